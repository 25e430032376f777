//! The repository's contract in `docs/` kept in step with the program: every config key
//! `watchdog config` prints is in docs/CONFIG.md with the same default (and nothing
//! else is), every example there is accepted, every key of a real `status --json`
//! report, every log event name and every reason code the code can produce is in
//! docs/REPORT.md, every file and test docs/DESIGN.md names exists, and every comment
//! cites a section of a file the repository holds.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A home directory for the runs: `~` paths print under it, and are mapped back.
const HOME: &str = "/home/docs-contract";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The watchdog with a known home and no configuration from the environment.
fn watchdog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_watchdog"))
        .args(args)
        .env("HOME", HOME)
        .env_remove("WATCHDOG_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .expect("run watchdog")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The text of `markdown` without its fenced blocks, so that code in examples is not
/// read as a table or a citation.
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The contents of every `inline code` span.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, span)| span.to_string())
        .collect()
}

/// The cells of every table row of `text` (the separator rows left out).
fn table_rows(text: &str) -> Vec<Vec<String>> {
    prose(text)
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The single code span a table cell consists of, if it is one.
fn code_cell(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`')
}

/// The part of `markdown` from the heading `## title` to the next `## ` heading.
fn section<'a>(markdown: &'a str, title: &str) -> &'a str {
    let heading = format!("\n## {title}\n");
    let start = markdown
        .find(&heading)
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let rest = &markdown[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// A TOML value as written on the right of `key = `.
fn toml_value(written: &str) -> toml::Value {
    let table: toml::Table = format!("v = {written}")
        .parse()
        .unwrap_or_else(|e| panic!("{written:?} is no TOML value: {e}"));
    table["v"].clone()
}

/// `section.key` → value for every key of a configuration as `watchdog config` prints
/// it. A list of tables (`[[fds.paths]]`, `[[files]]`) contributes its first entry's
/// keys: the defaults hold one entry each.
fn flatten_config(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten_config(&path, inner, out),
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                if let Some(toml::Value::Table(first)) = items.first() {
                    flatten_config(&path, first, out);
                }
            }
            toml::Value::String(s) if s.starts_with(&format!("{HOME}/")) => {
                let home_relative = format!("~{}", &s[HOME.len()..]);
                out.insert(path, toml::Value::String(home_relative));
            }
            other => {
                out.insert(path, other.clone());
            }
        }
    }
}

#[test]
fn config_doc_lists_every_key_with_the_printed_default() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("watchdog.toml");
    std::fs::write(&empty, "").unwrap();
    let run = watchdog(&["config", "-c", empty.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let printed: toml::Table = text(&run.stdout)
        .parse()
        .unwrap_or_else(|e| panic!("`watchdog config` printed no TOML: {e}"));
    let mut program = BTreeMap::new();
    flatten_config("", &printed, &mut program);

    let mut documented = BTreeMap::new();
    for row in table_rows(&read("docs/CONFIG.md")) {
        let (Some(key), Some(default)) = (
            row.first().and_then(|c| code_cell(c)),
            row.get(1).and_then(|c| code_cell(c)),
        ) else {
            continue;
        };
        if key.contains('.') {
            let earlier = documented.insert(key.to_string(), toml_value(default));
            assert!(earlier.is_none(), "docs/CONFIG.md lists {key} twice");
        }
    }

    let mut problems = Vec::new();
    for (key, value) in &program {
        match documented.get(key) {
            None => problems.push(format!("{key} = {value} is not in docs/CONFIG.md")),
            Some(doc) if doc != value => problems.push(format!(
                "{key}: docs/CONFIG.md says {doc}, `watchdog config` prints {value}"
            )),
            Some(_) => {}
        }
    }
    for key in documented.keys().filter(|k| !program.contains_key(*k)) {
        problems.push(format!(
            "docs/CONFIG.md lists {key}, which `watchdog config` does not know"
        ));
    }
    assert!(
        program.len() > 40,
        "too few keys read back: {:?}",
        program.keys()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The ```toml blocks of a Markdown file.
fn toml_examples(markdown: &str) -> Vec<String> {
    let mut examples = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                examples.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    examples
}

/// Every example is accepted by `watchdog config --check` as it is written, except that
/// a `ca_file` names a certificate the test makes (the examples name the operator's).
fn assert_examples_accepted(doc: &str, at_least: usize) {
    let examples = toml_examples(&read(doc));
    assert!(
        examples.len() >= at_least,
        "{doc}: found {} examples",
        examples.len()
    );
    let dir = tempfile::tempdir().unwrap();
    for (i, example) in examples.iter().enumerate() {
        let example = with_a_real_ca_file(example, dir.path());
        let file = dir.path().join(format!("example-{i}.toml"));
        std::fs::write(&file, &example).unwrap();
        let run = watchdog(&["config", "--check", "-c", file.to_str().unwrap()]);
        assert_eq!(
            run.status.code(),
            Some(0),
            "{doc} example {i} is refused: {}\n{example}",
            text(&run.stderr)
        );
    }
}

/// `example` with the path of an uncommented `ca_file = "…"` replaced by a self-signed
/// certificate made in `dir` (openssl, which script/bootstrap installs).
fn with_a_real_ca_file(example: &str, dir: &Path) -> String {
    let Some(line) = example
        .lines()
        .find(|l| l.trim_start().starts_with("ca_file = \"/"))
    else {
        return example.to_string();
    };
    let cert = dir.join("cert.pem");
    if !cert.exists() {
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is not installed: run script/bootstrap");
        assert!(made.status.success(), "openssl: {}", text(&made.stderr));
    }
    example.replace(line, &format!("ca_file = {:?}", cert.display().to_string()))
}

#[test]
fn config_doc_examples_are_accepted() {
    assert_examples_accepted("docs/CONFIG.md", 5);
}

/// README shows contrib/'s alert rules as they are (tests/metrics.rs runs them through
/// `promtool check rules`).
#[test]
fn readme_shows_the_alert_rules_of_contrib() {
    let rules = read("contrib/prometheus/watchdog.rules.yml");
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("```yaml\n{rules}```")),
        "README's alert rules differ from contrib/prometheus/watchdog.rules.yml"
    );
}

/// README's examples are what an operator copies first.
#[test]
fn readme_examples_are_accepted() {
    assert_examples_accepted("README.md", 8);
}

/// docs/CONFIG.md, "HTTPS": a ca_file that cannot be read is refused at its line with
/// the fix, before anything is touched; insecure_tls off loopback is warned about.
#[test]
fn a_missing_ca_file_is_refused_with_file_line_and_fix_and_insecure_tls_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("watchdog.toml");
    let missing = dir.path().join("cert.pem");
    std::fs::write(
        &file,
        format!(
            "[health]\nurl = \"https://127.0.0.1:8787/health\"\nca_file = {:?}\n[state]\n\
             dir = {:?}\n[log]\nfile = \"\"\n",
            missing.display(),
            state.display()
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let expected = format!(
        "watchdog: {path}:3:11: health.ca_file {:?}: cannot read it (No such file or \
         directory (os error 2)): write the server's certificate there (Hermes WebUI's \
         HERMES_WEBUI_TLS_CERT file), or set ca_file = \"\" to use the system's trust store\n",
        missing.display()
    );
    for args in [
        vec!["config", "--check", "-c", path],
        vec!["check", "-c", path],
    ] {
        let run = watchdog(&args);
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&run.stderr), expected, "{args:?}");
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    assert!(!state.exists(), "a refused config touched the state dir");

    std::fs::write(
        &file,
        "[health]\nurl = \"https://10.0.0.5/health\"\ninsecure_tls = true\n",
    )
    .unwrap();
    let run = watchdog(&["config", "--check", "-c", path]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(
        text(&run.stderr).starts_with(
            "watchdog: warning: health.insecure_tls = true skips certificate verification for \
             10.0.0.5, which is not a loopback address: anything on the way there can answer \
             for the server (and so keep a dead one running or get a live one restarted); set \
             health.ca_file to its certificate instead\n"
        ),
        "{}",
        text(&run.stderr)
    );
}

/// The second argument of every `Event::new(..)` call in the program's own source (the
/// tests and proptests left out), as written.
fn event_name_arguments(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = source[from..].find("Event::new(") {
        let start = from + at + "Event::new(".len();
        let args = call_arguments(&source[start..]);
        found.push((start, args.get(1).cloned().unwrap_or_default()));
        from = start;
    }
    found
}

/// The top-level arguments of a call whose text starts just after its `(`: commas inside
/// nested brackets and string literals do not split.
fn call_arguments(text: &str) -> Vec<String> {
    let mut args = vec![String::new()];
    let mut depth = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let last = args.last_mut().unwrap();
                last.push(c);
                while let Some(s) = chars.next() {
                    last.push(s);
                    match s {
                        '\\' => last.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => break,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(String::new());
                continue;
            }
            _ => {}
        }
        args.last_mut().unwrap().push(c);
    }
    args.into_iter().map(|a| a.trim().to_string()).collect()
}

/// The string literal `arg` is, if it is one.
fn literal(arg: &str) -> Option<String> {
    let inner = arg.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then(|| inner.to_string())
}

/// The names a variable `name` takes in `let (name, ..) = match .. { .. => ("x", ..) }`
/// before `before`: the first element of each arm's tuple.
fn names_bound_by_match(source: &str, name: &str, before: usize) -> Vec<String> {
    let head = &source[..before];
    let Some(bind) = head.rfind(&format!("let ({name},")) else {
        return Vec::new();
    };
    let arms = &head[bind..];
    arms.match_indices("=> (")
        .filter_map(|(at, arrow)| {
            let args = call_arguments(&arms[at + arrow.len()..]);
            literal(args.first()?)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The program's source files, without test-only code: `src/proptests/`, `tests.rs`
/// files, and the `#[cfg(test)] mod tests` at the end of a file.
fn program_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    files
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "proptests"))
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|p| {
            let mut source = std::fs::read_to_string(&p).unwrap();
            if let Some(at) = source.find("#[cfg(test)]\nmod tests {") {
                source.truncate(at);
            }
            (p, source)
        })
        .collect()
}

/// The first-column code spans of the table rows in `text`.
fn first_column(text: &str) -> BTreeSet<String> {
    table_rows(text)
        .iter()
        .filter_map(|row| code_cell(row.first()?).map(str::to_string))
        .collect()
}

#[test]
fn log_doc_lists_every_event_the_code_emits() {
    let mut emitted = BTreeSet::new();
    let mut unreadable = Vec::new();
    for (path, source) in program_sources() {
        for (at, arg) in event_name_arguments(&source) {
            if let Some(name) = literal(&arg) {
                emitted.insert(name);
                continue;
            }
            let names = names_bound_by_match(&source, &arg, at);
            if names.is_empty() {
                unreadable.push(format!(
                    "{}: Event::new with the name {arg:?}: write it as a literal, or bind it \
                     with `let ({arg}, ..) = match .. {{ .. => (\"name\", ..) }}`",
                    path.display()
                ));
            }
            emitted.extend(names);
        }
    }
    assert!(unreadable.is_empty(), "{}", unreadable.join("\n"));
    // The scan itself works: these are emitted through a literal and a `match`.
    for name in ["unhealthy", "restart", "start", "restarted"] {
        assert!(emitted.contains(name), "{name} not found in {emitted:?}");
    }

    let report = read("docs/REPORT.md");
    // The events' table is the one with four columns (event, level, when, extra fields).
    let documented: BTreeSet<String> = table_rows(section(&report, "Log events"))
        .iter()
        .filter(|row| row.len() == 4)
        .filter_map(|row| code_cell(&row[0]).map(str::to_string))
        .collect();
    let undocumented: Vec<_> = emitted.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&emitted).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "events the code emits but docs/REPORT.md does not list: {undocumented:?}; \
         listed but never emitted: {unknown:?}"
    );
}

#[test]
fn report_doc_lists_every_reason_code() {
    let decide = read("src/decide.rs");
    let codes: BTreeSet<String> = decide
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.trim().split_once("ReasonCode::")?;
            let (_, value) = rest.split_once(" => ")?;
            literal(value.trim_end_matches(','))
        })
        .collect();
    assert!(codes.len() >= 15, "read {codes:?}");
    let report = read("docs/REPORT.md");
    let documented = first_column(section(&report, "Reason codes"));
    assert_eq!(codes, documented, "src/decide.rs against docs/REPORT.md");
}

/// A loopback HTTP server answering every GET with 200 and a small JSON body; killed and
/// reaped when dropped, even when the test fails.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        const SCRIPT: &str = r#"
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok", "sessions": 0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", SCRIPT])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed (as for the rest of the suite)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        let read = BufReader::new(stdout).read_line(&mut line);
        let mut server = Server { child, port: 0 };
        read.expect("the server's port");
        server.port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port: {line:?}"));
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every key path of a JSON value: `a.b` for objects, `a[]` for arrays of objects.
fn key_paths(prefix: &str, value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                key_paths(&path, inner, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items.iter().filter(|i| i.is_object()) {
                key_paths(&format!("{prefix}[]"), item, out);
            }
        }
        _ => {}
    }
}

#[test]
fn report_doc_lists_every_key_of_a_real_report() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("watchdog.toml");
    std::fs::write(
        &file,
        format!(
            "[target]\npidfile = \"\"\n[health]\nurl = \"http://127.0.0.1:{}/health\"\n\
             attempts = 1\n[state]\ndir = {:?}\n[log]\nfile = \"\"\n",
            server.port,
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let run = watchdog(&["status", "--json", "-c", file.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("status --json printed no JSON: {e}"));
    assert_eq!(report["target"]["found_by"], serde_json::json!(["port"]));
    let mut keys = BTreeSet::new();
    key_paths("", &report, &mut keys);
    // A trend needs samples over ten minutes and more: its keys come from one built here.
    assert!(report["trend"].is_null());
    let trend = watchdog::trend::Trend {
        samples: 3,
        window_s: 21600,
        rate_per_hour: 12.5,
        limit: 1000,
        projected_s: Some(3600),
        top_growing: Some(watchdog::trend::Growth {
            path: "/srv/state.db".into(),
            delta: 60,
        }),
    };
    key_paths("trend", &serde_json::to_value(&trend).unwrap(), &mut keys);
    // The holder, the census, a file rule and a reason-free verdict all present.
    for key in [
        "port_holders[].pid",
        "fds.by_kind.file",
        "files[].size",
        "action.kind",
    ] {
        assert!(keys.contains(key), "{key} missing from {keys:?}");
    }
    let doc = read("docs/REPORT.md");
    let documented = first_column(section(&doc, "The report"));
    let undocumented: Vec<_> = keys.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "keys of `status --json` that docs/REPORT.md does not list: {undocumented:?}"
    );
}

#[test]
fn design_doc_names_files_and_tests_that_exist() {
    let mut problems = Vec::new();
    let mut named = 0;
    for doc in [
        "docs/DESIGN.md",
        "docs/CONFIG.md",
        "docs/REPORT.md",
        "docs/RELIABILITY.md",
    ] {
        for span in code_spans(&prose(&read(doc))) {
            let (file, test) = match span.split_once("::") {
                Some((file, test)) => (file, Some(test)),
                None => (span.as_str(), None),
            };
            if !["src/", "tests/", "bench/", "docs/"]
                .iter()
                .any(|p| file.starts_with(p))
                || file.contains(' ')
            {
                continue;
            }
            named += 1;
            let path = repo().join(file);
            if !path.exists() {
                problems.push(format!("{doc} names {file}, which does not exist"));
                continue;
            }
            if let Some(test) = test {
                let source = std::fs::read_to_string(&path).unwrap_or_default();
                if !source.contains(&format!("fn {test}(")) {
                    problems.push(format!("{doc} names {span}, which is no function there"));
                }
            }
        }
    }
    assert!(named > 50, "only {named} files and tests named");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Comments cite the repository's own documents by file and section heading, as in
/// `docs/SECURITY.md, "Signals"`: the section must exist, and no comment cites the
/// specification the repository does not contain.
#[test]
fn comments_cite_sections_that_exist_in_the_repository() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    rust_files(&repo().join("tests"), &mut files);
    let mut problems = Vec::new();
    let mut citations = 0;
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        for (n, line) in source.lines().enumerate() {
            let Some(comment) = line.split_once("//").map(|(_, c)| c) else {
                continue;
            };
            let place = format!("{}:{}", path.display(), n + 1);
            if comment.contains("SPEC §") || comment.contains("SPEC's") {
                problems.push(format!("{place} cites the SPEC: cite docs/*.md instead"));
            }
            let mut rest = comment;
            while let Some(at) = rest.find("docs/") {
                rest = &rest[at..];
                let Some((doc, after)) = rest.split_once(".md") else {
                    break;
                };
                rest = after;
                let Some(title) = after
                    .strip_prefix(", \"")
                    .and_then(|t| t.split_once('"'))
                    .map(|(title, _)| title)
                else {
                    continue;
                };
                citations += 1;
                let markdown = read(&format!("{doc}.md"));
                let heading = markdown
                    .lines()
                    .any(|l| l.trim_start_matches('#').trim() == title && l.starts_with('#'));
                if !heading {
                    problems.push(format!(
                        "{place} cites {doc}.md, \"{title}\": no such heading"
                    ));
                }
            }
        }
    }
    assert!(citations > 20, "only {citations} citations read");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
