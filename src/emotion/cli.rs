//! The `emotibot analyze` and `emotibot eval` commands, as library functions over readers and
//! writers so that `main` only parses arguments and opens files.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use super::report::{EvalReport, MalformedLine};
use super::{Emotion, Scorer, Scores};

/// How `analyze` writes each result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// `{"dominant":"joy","confidence":0.81,"scores":{"anger":..,"neutral":..}}`
    #[default]
    Json,
    /// Just the dominant label.
    Label,
}

/// Strips the line terminator (`\n` or `\r\n`).
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn write_json(output: &mut impl Write, scores: &Scores) -> io::Result<()> {
    // Labels are fixed ASCII words and the values finite floats, so no escaping is needed.
    write!(
        output,
        "{{\"dominant\":\"{}\",\"confidence\":{:.4},\"scores\":{{",
        scores.dominant().as_str(),
        scores.confidence()
    )?;
    for (i, e) in Emotion::ALL.iter().enumerate() {
        let separator = if i == 0 { "" } else { "," };
        write!(
            output,
            "{separator}\"{}\":{:.4}",
            e.as_str(),
            scores.get(*e)
        )?;
    }
    writeln!(output, "}}}}")
}

/// Scores each line of `input` (one text per line; invalid UTF-8 is replaced, not rejected) and
/// writes one result line per input line.
pub fn analyze(
    mut input: impl BufRead,
    mut output: impl Write,
    format: OutputFormat,
) -> io::Result<()> {
    let scorer = Scorer::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(trim_line_end(&line));
        let scores = scorer.score(&text);
        match format {
            OutputFormat::Json => write_json(&mut output, &scores)?,
            OutputFormat::Label => writeln!(output, "{}", scores.dominant().as_str())?,
        }
    }
    output.flush()
}

/// One labelled example, or why the line is not one.
fn parse_labelled(line: &[u8]) -> Result<(&str, Emotion), String> {
    let line = std::str::from_utf8(line).map_err(|_| "not valid UTF-8".to_owned())?;
    let (text, label) = line
        .rsplit_once('\t')
        .ok_or_else(|| "no tab between text and label".to_owned())?;
    let label = label.trim();
    let emotion = Emotion::from_name(label).ok_or_else(|| {
        let shown: String = label.chars().take(20).collect();
        format!("unknown label {shown:?}")
    })?;
    Ok((text, emotion))
}

/// Scores every `text<TAB>label` line of the file at `path`, writes the report (accuracy,
/// macro-F1, per-label precision/recall/F1, confusion matrix, malformed lines) to `output` and
/// returns it. Blank lines are ignored; malformed ones are listed, never fatal.
pub fn eval(path: &Path, mut output: impl Write) -> io::Result<EvalReport> {
    let mut input = BufReader::new(File::open(path)?);
    let scorer = Scorer::new();
    let mut report = EvalReport::default();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        let content = trim_line_end(&line);
        if content.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_labelled(content) {
            Ok((text, truth)) => report
                .confusion
                .record(truth, scorer.score(text).dominant()),
            Err(reason) => report.malformed.push(MalformedLine {
                line: number,
                reason,
            }),
        }
    }
    writeln!(output, "file:      {}", path.display())?;
    write!(output, "{report}")?;
    output.flush()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyze_to_string(input: &str, format: OutputFormat) -> String {
        let mut out = Vec::new();
        let result = analyze(input.as_bytes(), &mut out, format);
        assert!(result.is_ok());
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn analyze_writes_one_json_object_per_line() {
        let out = analyze_to_string(
            "I love this!\r\n\nwhy would you do that\n",
            OutputFormat::Json,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        for line in lines {
            let value: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let scores = value["scores"].as_object().map(|o| o.len());
            assert_eq!(scores, Some(7), "{line}");
            let sum: f64 = Emotion::ALL
                .iter()
                .filter_map(|e| value["scores"][e.as_str()].as_f64())
                .sum();
            assert!((sum - 1.0).abs() < 0.001, "{line}");
            assert!(Emotion::from_name(value["dominant"].as_str().unwrap_or("")).is_some());
        }
    }

    #[test]
    fn analyze_label_format_prints_labels_only() {
        let out = analyze_to_string("I love you so much\n\n", OutputFormat::Label);
        assert_eq!(out, "joy\nneutral\n");
    }

    #[test]
    fn analyze_survives_invalid_utf8() {
        let mut out = Vec::new();
        let input: &[u8] = b"\xff\xfe happy \xc3\n";
        assert!(analyze(input, &mut out, OutputFormat::Label).is_ok());
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn eval_counts_examples_and_reports_malformed_lines() {
        let path = std::env::temp_dir().join(format!("emotibot-eval-{}.tsv", std::process::id()));
        let data: &[u8] =
            b"I love this so much\tjoy\nno label here\n\nthis is awful\tNOPE\nok\tneutral\n\xff";
        assert!(std::fs::write(&path, data).is_ok());
        let mut out = Vec::new();
        let report = eval(&path, &mut out);
        let _ = std::fs::remove_file(&path);
        let Ok(report) = report else {
            panic!("eval failed: {report:?}");
        };
        assert_eq!(report.confusion.total(), 2);
        let lines: Vec<usize> = report.malformed.iter().map(|m| m.line).collect();
        assert_eq!(lines, [2, 4, 6]);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("macro-F1"));
        assert!(text.contains("line 4: unknown label \"NOPE\""));
    }

    #[test]
    fn eval_of_a_missing_file_is_an_error() {
        let result = eval(Path::new("/nonexistent/emotibot.tsv"), io::sink());
        assert!(result.is_err());
    }
}
