//! Previews, tags, old versions, the trash and share links through the user API (docs/web.md),
//! by signed-in browsers (Python requests with the session cookie and CSRF token) against a
//! real server, written as attacks: another user's files, a decompression bomb, a corrupt
//! image, a file named like markup, requests without the CSRF token; PDF pages, and PDFs
//! built to exhaust a renderer's memory or CPU. Also measures the server CPU a 12-megapixel
//! JPEG's thumbnail costs (the figure is printed).

use std::io::Cursor;
use std::process::Command;

use image::{DynamicImage, ImageEncoder, RgbImage};

use crate::common::{require, run, Server};
use crate::user_files::households;

/// A JPEG of `w` x `h` with a gradient and some detail, optionally with an EXIF orientation.
pub fn jpeg(w: u32, h: u32, orientation: Option<u16>) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w.max(1)) as u8,
            (y * 255 / h.max(1)) as u8,
            ((x ^ y) & 0xff) as u8,
        ])
    });
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
    if let Some(o) = orientation {
        // a TIFF header (big-endian) and one IFD entry: Orientation (0x0112), SHORT, 1 value
        let mut exif = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
        exif.extend_from_slice(&o.to_be_bytes());
        exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        enc.set_exif_metadata(exif).expect("exif");
    }
    enc.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .expect("jpeg");
    out
}

/// A small PNG (with transparency when `alpha`).
pub fn png(w: u32, h: u32, alpha: bool) -> Vec<u8> {
    let img = if alpha {
        DynamicImage::new_rgba8(w, h)
    } else {
        DynamicImage::new_rgb8(w, h)
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

#[test]
fn previews_tags_versions_and_shares_refuse_attacks() {
    require("python3");
    let server = Server::plain();
    households(&server);
    let dir = tempfile::tempdir().expect("tmp");
    let files: [(&str, Vec<u8>); 9] = [
        ("rotated.jpg", jpeg(200, 100, Some(6))),
        ("photo12mp.jpg", jpeg(4000, 3000, None)),
        ("clear.png", png(40, 20, true)),
        ("small.png", png(64, 32, false)),
        ("two.pdf", crate::pdfs::two_pages_with_script()),
        ("garbage.pdf", crate::pdfs::garbage()),
        ("forms-bomb.pdf", crate::pdfs::bomb()),
        ("cpu-bomb.pdf", crate::pdfs::cpu_bomb()),
        ("corrupt.png", {
            let mut p = png(64, 64, false);
            p.truncate(p.len() / 2);
            p
        }),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).expect("write");
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/user_previews.py"
    );
    let hwm_before = server.vm_hwm_kib();
    let out = run(Command::new("python3")
        .arg(script)
        .arg(server.url(""))
        .arg(server.pid().to_string())
        .arg(dir.path()));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(text.contains("all checks passed"), "{text}");
    // the bomb and the 12-megapixel decode stayed within the decoder's bounds
    let hwm = server.vm_hwm_kib();
    println!("server peak RSS: {hwm_before} KiB before, {hwm} KiB after");
    assert!(hwm < hwm_before + 400 * 1024, "peak RSS grew to {hwm} KiB");
}
