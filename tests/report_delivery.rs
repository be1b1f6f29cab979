//! The machine room end to end, against independent servers: a webhook receiver (Python's
//! http.server, behind TLS with its own CA) and an SMTP server (aiosmtpd with STARTTLS and
//! AUTH required), both parsing what they got; an outage of both sinks with a SIGKILL of
//! `oob serve` in between (every report still arrives exactly once); the status page in a
//! real headless browser (Debian's chromium), with a screenshot kept as a CI artifact.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use oob::remedy::journal::Journal;
use oob::report::message::{Kind, Message};
use oob::report::FaultReport;
use serde_json::Value;

use crate::common::simfleet::{serve, served_at, start_fleet, wait_for, write_config};
use crate::common::{free_port, oob};

/// A CA and a server certificate for 127.0.0.1 signed by it, made by openssl.
fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let sh = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=oob-test-ca 2>/dev/null; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out leaf.csr -subj /CN=127.0.0.1 2>/dev/null; \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > leaf.ext; \
         openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile leaf.ext 2>/dev/null",
        d = dir.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &sh])
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {out:?}");
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// A Python server from `tests/servers/`, started once it printed `ready`; killed on drop.
struct PyServer(std::process::Child);

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python(server: &str) -> PathBuf {
    match server {
        // aiosmtpd lives in the venv the test script makes.
        "smtp.py" => PathBuf::from(
            std::env::var("OOB_MAIL_VENV").unwrap_or_else(|_| "/tmp/oob-peers/venv-mail".into()),
        )
        .join("bin/python3"),
        _ => PathBuf::from("python3"),
    }
}

fn start_py(server: &str, args: &[String]) -> PyServer {
    use std::io::BufRead as _;
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/servers")
        .join(server);
    let mut child = std::process::Command::new(python(server))
        .arg(&script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {server} (scripts/test installs aiosmtpd): {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    assert_eq!(line.trim(), "ready", "{server} did not come up");
    PyServer(child)
}

/// A test server's `--port PORT --out FILE` (where it listens, where it writes what it got).
fn at(port: u16, out: &Path) -> Vec<String> {
    vec![
        "--port".into(),
        port.to_string(),
        "--out".into(),
        out.display().to_string(),
    ]
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sample_report() -> FaultReport {
    FaultReport {
        node: "node-2".into(),
        created: "2026-11-28T10:00:00Z".into(),
        location: oob::config::Location {
            site: Some("fra1".into()),
            room: Some("hall-1".into()),
            rack: Some("r12".into()),
            unit: Some("U7".into()),
        },
        bmc: None,
        bmc_address: "redfish://127.0.0.1/redfish/v1/Systems/1".into(),
        summary: "critical hardware finding on Drive 3".into(),
        component: Some("Drive 3".into()),
        verdict: "faulty".into(),
        findings: vec![],
        evidence: vec!["ping 3/3".into()],
        timeline: vec![("2026-11-28T10:00:00Z".into(), "cordoned".into())],
        recommended_action: "replace Drive 3".into(),
        locator: Some("on (read back: on)".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_and_mail_reach_independent_servers_over_verified_tls_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, cert, key) = pki(d);
    let (hook_port, mail_port) = (free_port(), free_port());
    let hook_out = d.join("hook.jsonl");
    let mail_out = d.join("mail.jsonl");
    let tls = |c: &Path, k: &Path| {
        vec![
            "--cert".to_owned(),
            c.display().to_string(),
            "--key".to_owned(),
            k.display().to_string(),
        ]
    };
    let _hook = start_py(
        "webhook.py",
        &[at(hook_port, &hook_out), tls(&cert, &key)].concat(),
    );
    const TOKEN: &str = "hook-T0ken-9c1e55";
    const MAIL_PW: &str = "smtp-Pa55-41ab0c";
    let _smtp = start_py(
        "smtp.py",
        &[
            at(mail_port, &mail_out),
            vec![
                "--user".into(),
                "oob".into(),
                "--password".into(),
                MAIL_PW.into(),
            ],
            tls(&cert, &key),
        ]
        .concat(),
    );
    std::fs::write(d.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(d.join("smtp-pw"), MAIL_PW).unwrap();
    let config = d.join("oob.toml");
    std::fs::write(
        &config,
        format!(
            r#"[service]
journal = "{d}/journal.sqlite"
reports_dir = "{d}/reports"

[report]
retry_min_s = 1

[[report.sinks]]
kind = "webhook"
name = "hook"
url = "https://127.0.0.1:{hook_port}/oob"
token = {{ file = "{d}/token" }}
headers = {{ X-Team = "dc-ops" }}
ca_cert = "{ca}"

[[report.sinks]]
kind = "webhook"
name = "alerts"
url = "https://127.0.0.1:{hook_port}/api/v2/alerts"
format = "alertmanager"
ca_cert = "{ca}"

[[report.sinks]]
kind = "webhook"
name = "untrusted"
url = "https://127.0.0.1:{hook_port}/untrusted"

[[report.sinks]]
kind = "smtp"
name = "mail"
host = "127.0.0.1"
port = {mail_port}
tls = "starttls"
user = "oob"
password = {{ file = "{d}/smtp-pw" }}
ca_cert = "{ca}"
from = "oob <oob@example.net>"
to = ["noc@example.net"]
routes = [{{ site = "fra1", room = "hall-1", to = ["fra1-hall1@example.net"] }}]
"#,
            d = d.display(),
            ca = ca.display()
        ),
    )
    .unwrap();
    // A report and its follow-up in the outbox, as the executor writes them.
    let journal = Journal::open(&d.join("journal.sqlite")).unwrap();
    let sinks = ["hook", "alerts", "untrusted", "mail"];
    let report = Message::report("node-2/1/report", &sample_report()).unwrap();
    let back = Message::follow_up(
        Kind::Recovered,
        "node-2/1/report/recovered",
        "node-2",
        "2026-11-28T12:00:00Z",
        "node-2 is back: Ready and healthy; uncordoned",
        &["2026-11-28T11:59:00Z Drive 3 replaced".into()],
        Some(&report),
    );
    let now = oob::clock::now_ms();
    oob::report::outbox::enqueue(&journal, &sinks, &report, now).unwrap();
    oob::report::outbox::enqueue(&journal, &sinks, &back, now + 1).unwrap();
    drop(journal);

    let c = config.display().to_string();
    let run = oob(&["--config", &c, "report", "deliver"], &[]).await;
    // The sink without the CA refuses the server's certificate: that one stays pending.
    assert_eq!(run.code, 1, "{}", run.all());
    let out = run.all();
    assert!(out.contains("untrusted") && out.contains("failed"), "{out}");
    assert!(
        !out.contains(TOKEN) && !out.contains(MAIL_PW),
        "a secret leaked: {out}"
    );

    let posts = jsonl(&hook_out);
    let at = |path: &str| -> Vec<&Value> { posts.iter().filter(|p| p["path"] == path).collect() };
    assert!(at("/untrusted").is_empty(), "{posts:?}");
    let hook = at("/oob");
    assert_eq!(hook.len(), 2, "{posts:?}");
    assert_eq!(
        hook[0]["headers"]["authorization"],
        format!("Bearer {TOKEN}")
    );
    assert_eq!(hook[0]["headers"]["x-team"], "dc-ops");
    assert_eq!(hook[0]["headers"]["idempotency-key"], "node-2/1/report");
    // The report's own JSON document, as in the .json file.
    assert_eq!(hook[0]["body"]["component"], "Drive 3");
    assert_eq!(hook[0]["body"]["recommended_action"], "replace Drive 3");
    assert_eq!(hook[1]["body"]["event"], "recovered");
    let alerts = at("/api/v2/alerts");
    assert_eq!(alerts.len(), 2);
    assert!(alerts[0]["headers"].get("authorization").is_none());
    let fired = &alerts[0]["body"][0];
    assert_eq!(fired["labels"]["alertname"], "OobFaultReport");
    assert_eq!(fired["labels"]["node"], "node-2");
    assert_eq!(fired["labels"]["component"], "Drive 3");
    // Firing, with a horizon past the next "still down" (Alertmanager would resolve an alert
    // that nobody repeats after its resolve_timeout).
    let now = oob::clock::rfc3339(oob::clock::now_ms());
    assert!(fired["endsAt"].as_str().unwrap() > now.as_str(), "{fired}");
    let resolved = &alerts[1]["body"][0];
    assert_eq!(resolved["labels"], fired["labels"]);
    assert_eq!(resolved["endsAt"], "2026-11-28T12:00:00Z");

    let mails = jsonl(&mail_out);
    assert_eq!(mails.len(), 2, "{mails:?}");
    let m = &mails[0];
    assert_eq!(m["tls"], true);
    assert_eq!(m["authenticated"], true);
    assert_eq!(m["rcpt_tos"], serde_json::json!(["fra1-hall1@example.net"]));
    let subject = m["subject"].as_str().unwrap();
    assert!(
        subject.contains("node-2") && subject.contains("Drive 3"),
        "{subject}"
    );
    let parts: Vec<&str> = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        parts,
        ["multipart/alternative", "text/plain", "text/html"],
        "{m}"
    );
    let html = m["html"].as_str().unwrap();
    assert!(
        html.contains("Fault report: node-2") && html.contains("room hall-1"),
        "{html}"
    );
    assert!(m["text"].as_str().unwrap().contains("site fra1"), "{m}");
    assert_eq!(m["message_id"], "<node-2.1.report@oob>");
    assert_eq!(mails[1]["in_reply_to"], "<node-2.1.report@oob>");
    assert!(mails[1]["subject"].as_str().unwrap().starts_with("Re: "));

    // Delivered once: another pass sends nothing more to the sinks that took it.
    let again = oob(&["--config", &c, "report", "deliver"], &[]).await;
    assert!(!again.all().contains("delivered"), "{}", again.all());
    assert_eq!(jsonl(&hook_out).len(), 4);
    assert_eq!(jsonl(&mail_out).len(), 2);
    let status = oob(&["--config", &c, "-o", "json", "report", "status"], &[]).await;
    let v = status.json();
    assert_eq!(v["pending"], 2, "{v}");
    let rows = v["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    for r in rows {
        let want = if r["sink"] == "untrusted" {
            "pending"
        } else {
            "delivered"
        };
        assert_eq!(r["state"], want, "{r}");
    }
    let untrusted = rows.iter().find(|r| r["sink"] == "untrusted").unwrap();
    assert!(
        untrusted["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{untrusted}"
    );
}

/// How many deliveries the journal still holds pending, and how many failed tries so far.
fn outbox(journal: &Path) -> (u64, u32, usize) {
    let Ok(j) = Journal::open(journal) else {
        return (0, 0, 0);
    };
    let rows = j.deliveries(None).unwrap_or_default();
    (
        j.pending_deliveries().unwrap_or(0),
        rows.iter().map(|r| r.attempts).sum(),
        rows.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_wait_out_an_outage_and_a_sigkill_and_arrive_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fleet = start_fleet(d, 3, &["--fail-disk", "node-2"]);
    let (hook_port, mail_port) = (free_port(), free_port());
    let config = write_config(
        d,
        &fleet.desc,
        &format!(
            r#"
[report]
retry_min_s = 1
retry_max_s = 2

[[report.sinks]]
kind = "webhook"
name = "hook"
url = "http://127.0.0.1:{hook_port}/reports"

[[report.sinks]]
kind = "smtp"
name = "mail"
host = "127.0.0.1"
port = {mail_port}
tls = "none"
from = "oob@example.net"
to = ["noc@example.net"]
"#
        ),
    );
    let journal = d.join("journal.sqlite");
    // Both sinks down: the report is written, its deliveries fail and wait.
    let mut s = serve(d, &config);
    wait_for("failed deliveries", Duration::from_secs(60), || async {
        let (pending, tries, rows) = outbox(&journal);
        rows >= 2 && pending as usize == rows && tries >= 2
    })
    .await;
    // Visible in the metrics while it waits (the gauge follows each delivery pass).
    let url = format!("{}metrics", served_at(d).unwrap());
    wait_for("the outbox in /metrics", Duration::from_secs(20), || {
        let url = url.clone();
        async move {
            let text = match reqwest::get(&url).await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            text.contains("oob_reports_pending 2")
                && text.contains("oob_report_deliveries_total{sink=\"hook\",outcome=\"failed\"}")
        }
    })
    .await;
    s.kill().await.unwrap();
    let (_, tries_before, _) = outbox(&journal);

    // The sinks come back while oob is down; oob comes back and delivers.
    let hook_out = d.join("hook.jsonl");
    let mail_out = d.join("mail.jsonl");
    let _hook = start_py("webhook.py", &at(hook_port, &hook_out));
    let _smtp = start_py("smtp.py", &at(mail_port, &mail_out));
    let mut s = serve(d, &config);
    wait_for("the deliveries", Duration::from_secs(60), || async {
        outbox(&journal).0 == 0
    })
    .await;
    // A few more passes: nothing is sent again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    s.kill().await.unwrap();

    let rows = Journal::open(&journal).unwrap().deliveries(None).unwrap();
    let mut ids: Vec<String> = rows.iter().map(|r| r.message.clone()).collect();
    ids.sort();
    ids.dedup();
    assert!(
        ids.iter().any(|i| i.starts_with("node-2/")),
        "node-2's report is in the outbox: {ids:?}"
    );
    assert!(rows.iter().all(|r| r.state == "delivered"), "{rows:?}");
    assert!(rows.iter().map(|r| r.attempts).sum::<u32>() > tries_before);
    let posts = jsonl(&hook_out);
    let mails = jsonl(&mail_out);
    for id in &ids {
        let hooked = posts
            .iter()
            .filter(|p| p["headers"]["idempotency-key"] == id.as_str())
            .count();
        let mail_id = format!("<{}@oob>", id.replace('/', "."));
        let mailed = mails.iter().filter(|m| m["message_id"] == mail_id).count();
        assert_eq!((hooked, mailed), (1, 1), "{id}: {posts:?} {mails:?}");
    }
    assert_eq!(posts.len(), ids.len());
    assert_eq!(mails.len(), ids.len());
    let report = posts
        .iter()
        .find(|p| p["body"]["node"] == "node-2")
        .unwrap();
    assert!(report["body"]["component"].is_string(), "{report}");
}

/// Debian's headless chromium (`chromium-headless-shell`, or the full `chromium`).
fn browser() -> PathBuf {
    for name in ["chromium-headless-shell", "chromium"] {
        for dir in ["/usr/bin", "/usr/local/bin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("no chromium (scripts/test installs chromium-headless-shell)");
}

/// Load `url` in the browser and return the DOM after scripts would have run; with `shot`,
/// also a phone-sized screenshot there.
fn chromium(url: &str, profile: &Path, shot: Option<&Path>) -> String {
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("60")
        .arg(browser())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    match shot {
        Some(path) => {
            cmd.arg("--window-size=412,915")
                .arg(format!("--screenshot={}", path.display()));
        }
        None => {
            cmd.arg("--dump-dom");
        }
    }
    let out = cmd.arg(url).stderr(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "chromium {url}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_shows_the_fleet_in_a_real_browser_and_runs_nothing_from_outside() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fleet = start_fleet(d, 3, &["--fail-disk", "node-2"]);
    let config = write_config(d, &fleet.desc, "");
    // A location from the inventory that tries to run script on the page.
    let hostile = r#"location = { rack = "<script>document.body.setAttribute('data-xss','1')</script>", unit = '<img src=x onerror="document.body.setAttribute(`data-xss`,`2`)">' }"#;
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "name = \"node-1\"\n",
        &format!("name = \"node-1\"\n{hostile}\n"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let mut s = serve(d, &config);
    let mut base = String::new();
    wait_for("the listen address", Duration::from_secs(20), || {
        base = served_at(d).unwrap_or_default();
        let ready = !base.is_empty();
        async move { ready }
    })
    .await;
    let journal = d.join("journal.sqlite");
    wait_for(
        "node-2 awaiting replacement",
        Duration::from_secs(60),
        || async {
            Journal::open(&journal)
                .and_then(|j| j.position("node-2"))
                .map(|p| p.is_some_and(|p| p.stage.name() == "await-replacement"))
                .unwrap_or(false)
        },
    )
    .await;

    let profile = d.join("chromium-profile");
    let dom = chromium(&base, &profile, None);
    // One row per machine of the simulated fleet, with the stage the journal holds.
    let j = Journal::open(&journal).unwrap();
    let hosts = fleet.desc["hosts"].as_array().unwrap();
    assert_eq!(dom.matches("<tr data-node=").count(), hosts.len(), "{dom}");
    for h in hosts {
        let name = h["name"].as_str().unwrap();
        let stage = j
            .position(name)
            .unwrap()
            .map_or("healthy", |p| p.stage.name());
        assert!(
            dom.contains(&format!("<tr data-node=\"{name}\" data-stage=\"{stage}\">")),
            "{name} {stage}: {dom}"
        );
    }
    // Escaped, shown as text, never run.
    assert!(
        !dom.contains("data-xss=\""),
        "script from the inventory ran: {dom}"
    );
    assert!(!dom.contains("<script>") && !dom.contains("<img"), "{dom}");
    assert!(dom.contains("&lt;script&gt;document.body"), "{dom}");

    // The node page, reached by the table's own link.
    let href = dom
        .split("href=\"")
        .find(|s| s.starts_with("node/node-2\""))
        .map(|s| s.split('"').next().unwrap().to_owned())
        .expect("a link to node-2's page");
    let page = chromium(&format!("{base}{href}"), &profile, None);
    assert!(page.contains("<h1 id=\"node\">node-2</h1>"), "{page}");
    assert!(page.contains("await-replacement"), "{page}");
    assert!(page.contains("id=\"findings\""), "{page}");
    assert!(page.contains("fault report written"), "{page}");
    assert!(page.contains("href=\"../report/node-2-"), "{page}");

    // A phone-sized screenshot of the fleet, kept for CI (target/ci-artifacts).
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&base, &profile, Some(&shot));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000,
        "{}",
        png.len()
    );

    // It reads, it never acts: only GET.
    let client = reqwest::Client::new();
    let post = client.post(&base).send().await.unwrap();
    assert_eq!(post.status().as_u16(), 405);
    s.kill().await.unwrap();
}
