//! PDF pages as images for the app's previews. A page is rasterised by hayro (pure Rust, no
//! script engine: a PDF's JavaScript is never run) in a child process, the `kura` binary
//! itself started with [`CHILD_ARG`], which first lowers its own resource limits (address
//! space, CPU seconds, no files written) and is killed past a wall-clock deadline: a hostile
//! PDF costs a bounded slice of one core and some memory, and never the server.

use std::io::{Read, Write};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The first argument that makes `kura` the renderer instead of the command line.
pub const CHILD_ARG: &str = "__pdf-page";

/// Address space the renderer may use (the binary's own mapping included).
const MAX_MEMORY: u64 = 512 * 1024 * 1024;

/// CPU seconds the renderer may use for one page (an ordinary page takes well under one).
const MAX_CPU_SECONDS: u64 = 3;

/// Wall-clock time the server waits for one page before killing the renderer: a render
/// holds one of the server's few render slots, so a hostile PDF may not keep it long.
const DEADLINE: Duration = Duration::from_secs(5);

/// Largest answer read back from the renderer (a 1024 px page is well below).
const MAX_OUTPUT: u64 = 32 * 1024 * 1024;

/// Exit code of the renderer for a page past the last one.
const NO_SUCH_PAGE: u8 = 3;

/// Exit code of the renderer for a file it cannot read as a PDF.
const UNREADABLE: u8 = 4;

/// A rendered page: a PNG and how many pages the document has.
#[derive(Debug)]
pub struct Page {
    /// The page, as a PNG.
    pub png: Vec<u8>,
    /// The document's number of pages.
    pub pages: u32,
}

/// Why a page was not rendered.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The page number is past the last page.
    #[error("{0}")]
    NoSuchPage(String),
    /// Not a PDF hayro reads, or one it could not render within the limits.
    #[error("{0}")]
    Unreadable(String),
    /// The renderer could not be started or spoke nonsense.
    #[error("PDF renderer failed: {0}")]
    Internal(String),
}

/// Whether `bytes` (the start of a file) is a PDF: `%PDF-` within its first KiB, where
/// readers look for it.
pub fn is_pdf(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(1024)]
        .windows(5)
        .any(|w| w == b"%PDF-")
}

/// Renders page `page` (from 1) of the PDF `source` to fit `edge` pixels on its longer side,
/// in a renderer process under the limits above.
pub async fn render(source: Vec<u8>, page: u32, edge: u32) -> Result<Page, PageError> {
    let exe = std::env::current_exe().map_err(|e| PageError::Internal(e.to_string()))?;
    // the same binary as this very process, even if an upgrade replaced the file on disk
    let exe = if cfg!(target_os = "linux") {
        std::path::PathBuf::from("/proc/self/exe")
    } else {
        exe
    };
    let mut child = tokio::process::Command::new(exe)
        .args([CHILD_ARG, &page.to_string(), &edge.to_string()])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| PageError::Internal(format!("cannot start the renderer: {e}")))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(PageError::Internal("no pipes to the renderer".into()));
    };
    let work = async {
        // a renderer that dies early closes its stdin: the write fails, the exit code tells
        let feed = async move {
            let _ = stdin.write_all(&source).await;
            drop(stdin);
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (mut stdout, mut stderr) = (stdout.take(MAX_OUTPUT + 1), stderr.take(4096));
        let read_out = stdout.read_to_end(&mut out);
        let read_err = stderr.read_to_end(&mut err);
        let (_, o, e) = tokio::join!(feed, read_out, read_err);
        o.and(e).map_err(|e| PageError::Internal(e.to_string()))?;
        let status = child
            .wait()
            .await
            .map_err(|e| PageError::Internal(e.to_string()))?;
        Ok::<_, PageError>((status, out, err))
    };
    let (status, out, err) = match tokio::time::timeout(DEADLINE, work).await {
        Ok(r) => r?,
        // dropping the future dropped the child: kill_on_drop ends it
        Err(_) => {
            return Err(PageError::Unreadable(format!(
                "the PDF did not render within {} seconds",
                DEADLINE.as_secs()
            )))
        }
    };
    let why = String::from_utf8_lossy(&err).trim().to_string();
    match status.code() {
        Some(0) => parse(&out),
        Some(c) if c == i32::from(NO_SUCH_PAGE) => Err(PageError::NoSuchPage(why)),
        Some(c) if c == i32::from(UNREADABLE) => Err(PageError::Unreadable(why)),
        // killed by its CPU limit (SIGXCPU, SIGKILL) or out of memory (an abort)
        _ => {
            tracing::info!(%status, stderr = %why, "the PDF renderer failed");
            Err(PageError::Unreadable(
                "the PDF could not be rendered within the preview's limits".into(),
            ))
        }
    }
}

/// Reads the renderer's answer (also the cached form of a page): `pages N\n`, then the PNG.
pub fn parse(out: &[u8]) -> Result<Page, PageError> {
    let bad = || PageError::Internal("the renderer's answer is malformed".into());
    let nl = out.iter().position(|b| *b == b'\n').ok_or_else(bad)?;
    let head = std::str::from_utf8(&out[..nl]).map_err(|_| bad())?;
    let pages = head
        .strip_prefix("pages ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)?;
    let png = out[nl + 1..].to_vec();
    if !png.starts_with(b"\x89PNG") {
        return Err(bad());
    }
    Ok(Page { png, pages })
}

/// The renderer's side: if this process was started as the renderer, renders and returns
/// its exit code; `None` for every other command line.
pub fn run_if_child() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some(CHILD_ARG) {
        return None;
    }
    Some(child(&args[1..]))
}

/// Lowers the limits, reads the PDF from standard input, writes the answer to standard output.
fn child(args: &[String]) -> ExitCode {
    let fail = |code: u8, why: &str| {
        eprintln!("{why}");
        ExitCode::from(code)
    };
    // first of all: whatever the PDF does next happens within these
    let limited = rlimit::setrlimit(rlimit::Resource::AS, MAX_MEMORY, MAX_MEMORY)
        .and_then(|_| {
            rlimit::setrlimit(rlimit::Resource::CPU, MAX_CPU_SECONDS, MAX_CPU_SECONDS + 1)
        })
        .and_then(|_| rlimit::setrlimit(rlimit::Resource::FSIZE, 0, 0))
        .and_then(|_| rlimit::setrlimit(rlimit::Resource::CORE, 0, 0));
    if let Err(e) = limited {
        return fail(1, &format!("cannot set the renderer's limits: {e}"));
    }
    let (Some(Ok(page)), Some(Ok(edge))) = (
        args.first().map(|a| a.parse::<u32>()),
        args.get(1).map(|a| a.parse::<u32>()),
    ) else {
        return fail(2, "usage: kura __pdf-page PAGE EDGE < file.pdf");
    };
    let mut source = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(super::MAX_PREVIEW_BYTES + 1)
        .read_to_end(&mut source)
    {
        return fail(1, &format!("cannot read the PDF: {e}"));
    }
    match page_png(source, page, edge) {
        Ok(p) => {
            let mut out = std::io::stdout().lock();
            let written = out
                .write_all(format!("pages {}\n", p.pages).as_bytes())
                .and_then(|_| out.write_all(&p.png))
                .and_then(|_| out.flush());
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, &format!("cannot write the page: {e}")),
            }
        }
        Err(PageError::NoSuchPage(m)) => fail(NO_SUCH_PAGE, &m),
        Err(PageError::Unreadable(m)) => fail(UNREADABLE, &m),
        Err(PageError::Internal(m)) => fail(1, &m),
    }
}

/// Rasterises one page in this process (the renderer calls it, under its limits).
fn page_png(source: Vec<u8>, page: u32, edge: u32) -> Result<Page, PageError> {
    use hayro::hayro_interpret::InterpreterSettings;
    use hayro::hayro_syntax::Pdf;
    use hayro::vello_cpu::color::palette::css::WHITE;
    use hayro::{PixmapSettings, RenderCache, RenderSettings};

    if source.len() as u64 > super::MAX_PREVIEW_BYTES {
        return Err(PageError::Unreadable(
            "the PDF is too large to preview".into(),
        ));
    }
    let pdf = Pdf::new(source)
        .map_err(|e| PageError::Unreadable(format!("not a PDF that can be previewed ({e:?})")))?;
    let pages = pdf.pages();
    let count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    if count == 0 {
        return Err(PageError::Unreadable("the PDF has no pages".into()));
    }
    let Some(p) = page
        .checked_sub(1)
        .and_then(|i| pages.get(usize::try_from(i).ok()?))
    else {
        return Err(PageError::NoSuchPage(format!(
            "no page {page}: the PDF has {count}"
        )));
    };
    let (w, h) = p.render_dimensions();
    if !(w.is_finite() && h.is_finite() && w >= 1.0 && h >= 1.0) {
        return Err(PageError::Unreadable("the page has no size".into()));
    }
    // fit the longer side to `edge` (at most 4x a point, so a stamp-sized page stays small)
    let scale = (edge as f32 / w.max(h)).min(4.0);
    let pixmap = hayro::render(
        p,
        &RenderCache::new(),
        &InterpreterSettings::default(),
        &RenderSettings::default(),
        &PixmapSettings {
            x_scale: scale,
            y_scale: scale,
            bg_color: WHITE,
        },
    );
    if pixmap.width() == 0 || pixmap.height() == 0 {
        return Err(PageError::Unreadable("the page has no size".into()));
    }
    let png = pixmap
        .into_png()
        .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok(Page { png, pages: count })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PDF of `n` pages of 200 x 100 points, each with a filled square (offsets computed).
    pub fn pdf(n: usize) -> Vec<u8> {
        let mut objs = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            format!(
                "<< /Type /Pages /Kids [{}] /Count {n} >>",
                (0..n)
                    .map(|i| format!("{} 0 R", 3 + 2 * i))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ];
        for i in 0..n {
            objs.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents {} 0 R >>",
                4 + 2 * i
            ));
            let s = "0 0 1 rg 10 10 50 50 re f";
            objs.push(format!("<< /Length {} >>\nstream\n{s}\nendstream", s.len()));
        }
        let mut out = b"%PDF-1.7\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objs.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes(),
        );
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objs.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    #[test]
    fn a_page_fits_the_edge_and_bad_pages_are_refused() {
        let p = page_png(pdf(2), 2, 256).unwrap();
        assert_eq!(p.pages, 2);
        let img = image::load_from_memory(&p.png).unwrap();
        assert_eq!((img.width(), img.height()), (256, 128));
        // the square is blue, the rest white
        let px = img.to_rgb8();
        assert_eq!(px.get_pixel(40, 100).0, [0, 0, 255]);
        assert_eq!(px.get_pixel(200, 20).0, [255, 255, 255]);
        assert!(matches!(
            page_png(pdf(2), 3, 256),
            Err(PageError::NoSuchPage(_))
        ));
        assert!(matches!(
            page_png(pdf(2), 0, 256),
            Err(PageError::NoSuchPage(_))
        ));
        assert!(matches!(
            page_png(b"%PDF-1.4 not really".to_vec(), 1, 256),
            Err(PageError::Unreadable(_))
        ));
        assert!(is_pdf(&pdf(1)) && !is_pdf(b"\x89PNG\r\n"));
    }

    #[test]
    fn the_answer_round_trips() {
        let p = page_png(pdf(1), 1, 64).unwrap();
        let mut out = b"pages 1\n".to_vec();
        out.extend_from_slice(&p.png);
        let back = parse(&out).unwrap();
        assert_eq!((back.pages, back.png.len()), (1, p.png.len()));
        assert!(parse(b"pages x\n\x89PNG").is_err());
        assert!(parse(b"pages 1\n<html>").is_err());
    }
}
