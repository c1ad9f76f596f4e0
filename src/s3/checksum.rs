//! Flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256): computed while the body streams,
//! compared with what the client declared in headers or trailers before anything is committed.

use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm};
use s3s::{s3_error, S3Result};

/// The stored-header names of the checksum values.
pub const NAMES: [&str; 5] = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];

/// A running checksum of a body and what it must equal.
pub struct Checker {
    hasher: ChecksumHasher,
    declared: Checksum,
}

impl Checker {
    /// Hashes with every algorithm that was declared or requested.
    pub fn new(
        algorithm: Option<&ChecksumAlgorithm>,
        declared: Checksum,
        trailer_names: &[String],
    ) -> S3Result<Self> {
        let mut h = ChecksumHasher::default();
        let mut want = |name: &str| -> S3Result<()> {
            match name.to_ascii_uppercase().as_str() {
                ChecksumAlgorithm::CRC32 => h.crc32 = Some(Default::default()),
                ChecksumAlgorithm::CRC32C => h.crc32c = Some(Default::default()),
                ChecksumAlgorithm::CRC64NVME => h.crc64nvme = Some(Default::default()),
                ChecksumAlgorithm::SHA1 => h.sha1 = Some(Default::default()),
                ChecksumAlgorithm::SHA256 => h.sha256 = Some(Default::default()),
                other => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "unsupported checksum algorithm {other}"
                    ))
                }
            }
            Ok(())
        };
        if let Some(a) = algorithm {
            want(a.as_str())?;
        }
        for (present, name) in [
            (declared.checksum_crc32.is_some(), "CRC32"),
            (declared.checksum_crc32c.is_some(), "CRC32C"),
            (declared.checksum_crc64nvme.is_some(), "CRC64NVME"),
            (declared.checksum_sha1.is_some(), "SHA1"),
            (declared.checksum_sha256.is_some(), "SHA256"),
        ] {
            if present {
                want(name)?;
            }
        }
        for t in trailer_names {
            if let Some(alg) = t.to_ascii_lowercase().strip_prefix("x-amz-checksum-") {
                want(alg)?;
            }
        }
        Ok(Checker {
            hasher: h,
            declared,
        })
    }

    /// Feeds a chunk.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Compares with the declared values (headers, then trailers); returns the computed ones.
    pub fn verify(self, trailers: Option<http::HeaderMap>) -> S3Result<Checksum> {
        let mut declared = self.declared;
        if let Some(t) = trailers {
            let get = |n: &str| t.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
            declared.checksum_crc32 = declared.checksum_crc32.or_else(|| get(NAMES[0]));
            declared.checksum_crc32c = declared.checksum_crc32c.or_else(|| get(NAMES[1]));
            declared.checksum_crc64nvme = declared.checksum_crc64nvme.or_else(|| get(NAMES[2]));
            declared.checksum_sha1 = declared.checksum_sha1.or_else(|| get(NAMES[3]));
            declared.checksum_sha256 = declared.checksum_sha256.or_else(|| get(NAMES[4]));
        }
        let got = self.hasher.finalize();
        for (name, want, have) in [
            ("CRC32", &declared.checksum_crc32, &got.checksum_crc32),
            ("CRC32C", &declared.checksum_crc32c, &got.checksum_crc32c),
            (
                "CRC64NVME",
                &declared.checksum_crc64nvme,
                &got.checksum_crc64nvme,
            ),
            ("SHA1", &declared.checksum_sha1, &got.checksum_sha1),
            ("SHA256", &declared.checksum_sha256, &got.checksum_sha256),
        ] {
            if let Some(w) = want {
                if Some(w) != have.as_ref() {
                    return Err(s3_error!(
                        BadDigest,
                        "{name} checksum does not match the body"
                    ));
                }
            }
        }
        Ok(got)
    }
}

/// The checksum values as stored headers.
pub fn to_headers(c: &Checksum, out: &mut std::collections::BTreeMap<String, String>) {
    for (name, v) in NAMES.iter().zip([
        &c.checksum_crc32,
        &c.checksum_crc32c,
        &c.checksum_crc64nvme,
        &c.checksum_sha1,
        &c.checksum_sha256,
    ]) {
        if let Some(v) = v {
            out.insert((*name).to_string(), v.clone());
        }
    }
}

/// Stored checksum headers back as a `Checksum`.
pub fn from_headers(h: &std::collections::BTreeMap<String, String>) -> Checksum {
    Checksum {
        checksum_crc32: h.get(NAMES[0]).cloned(),
        checksum_crc32c: h.get(NAMES[1]).cloned(),
        checksum_crc64nvme: h.get(NAMES[2]).cloned(),
        checksum_sha1: h.get(NAMES[3]).cloned(),
        checksum_sha256: h.get(NAMES[4]).cloned(),
        ..Default::default()
    }
}

/// The stored checksums of a multipart part (JSON, as the core keeps them).
pub fn of_part(json: Option<&str>) -> Checksum {
    let map: std::collections::BTreeMap<String, String> = json
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    from_headers(&map)
}

/// The composite checksum of an object completed from `parts` (each part's stored checksums),
/// as S3 computes it: for each algorithm every part has (CRC64NVME aside, which S3 only keeps
/// whole), the checksum of the concatenated binary part checksums, then `-N`. A part the client
/// names with a checksum must have that checksum (`InvalidPart`).
pub fn composite(parts: &[(Checksum, Checksum)]) -> S3Result<Checksum> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let pick = |c: &Checksum, i: usize| -> Option<String> {
        [
            &c.checksum_crc32,
            &c.checksum_crc32c,
            &c.checksum_crc64nvme,
            &c.checksum_sha1,
            &c.checksum_sha256,
        ][i]
            .clone()
    };
    for (i, name) in NAMES.iter().enumerate() {
        for (stored, named) in parts {
            if let Some(want) = pick(named, i) {
                if pick(stored, i).as_deref() != Some(want.as_str()) {
                    return Err(s3_error!(
                        InvalidPart,
                        "a part's {name} is not the one it was uploaded with"
                    ));
                }
            }
        }
    }
    let mut out = Checksum::default();
    for (i, alg) in [
        ChecksumAlgorithm::CRC32,
        ChecksumAlgorithm::CRC32C,
        ChecksumAlgorithm::CRC64NVME,
        ChecksumAlgorithm::SHA1,
        ChecksumAlgorithm::SHA256,
    ]
    .into_iter()
    .enumerate()
    {
        if alg == ChecksumAlgorithm::CRC64NVME || parts.is_empty() {
            continue;
        }
        let raw: Option<Vec<u8>> = parts.iter().try_fold(Vec::new(), |mut acc, (stored, _)| {
            acc.extend(b64.decode(pick(stored, i)?).ok()?);
            Some(acc)
        });
        let Some(raw) = raw else { continue };
        let mut c = Checker::new(
            Some(&ChecksumAlgorithm::from_static(alg)),
            Checksum::default(),
            &[],
        )?;
        c.update(&raw);
        let whole = c.verify(None)?;
        let value = pick(&whole, i).map(|v| format!("{v}-{}", parts.len()));
        match i {
            0 => out.checksum_crc32 = value,
            1 => out.checksum_crc32c = value,
            3 => out.checksum_sha1 = value,
            _ => out.checksum_sha256 = value,
        }
    }
    Ok(out)
}
