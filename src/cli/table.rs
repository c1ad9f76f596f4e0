//! Aligned tables for list commands: a header line, then one row per item (tabwriter aligns).

use std::io::Write;

/// Prints `header` and `rows` as aligned columns; control characters in cells become spaces,
/// so a stored message with a newline or tab cannot break the layout.
pub fn print<I>(header: &[&str], rows: I) -> std::io::Result<()>
where
    I: IntoIterator<Item = Vec<String>>,
{
    let mut out = tabwriter::TabWriter::new(std::io::stdout().lock()).padding(2);
    writeln!(out, "{}", header.join("\t"))?;
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| one_line(c)).collect();
        writeln!(out, "{}", cells.join("\t"))?;
    }
    out.flush()
}

/// A cell's text on one line.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_stay_on_one_line() {
        assert_eq!(super::one_line("a\nb\tc\r\n"), "a b c");
    }
}
