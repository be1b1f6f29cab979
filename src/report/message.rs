//! A message for the machine room: a fault report or a follow-up on it, rendered once when
//! it is written (the outbox stores it as JSON) so that every sink, now or after a restart,
//! sends the same words. The webhook's documents (the report's JSON, an Alertmanager
//! alert) are built here too; the sinks only carry them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{escape, FaultReport};
use crate::config::Location;

/// What a message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A fault report: the machine needs hands.
    Report,
    /// The machine is back (Ready, health check passed, uncordoned).
    Recovered,
    /// The machine was replaced and rejoined the cluster.
    Replaced,
    /// The machine still waits for hands, N hours after the report.
    StillDown,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::Recovered => "recovered",
            Self::Replaced => "replaced",
            Self::StillDown => "still-down",
        }
    }

    /// Whether the machine is fine again (the alert resolves).
    pub fn resolves(self) -> bool {
        matches!(self, Self::Recovered | Self::Replaced)
    }
}

/// One message, as every sink sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Unique and stable (`NODE/EPISODE/report`): the outbox writes it once, sinks get it
    /// as an idempotency key (webhook) or Message-ID (mail).
    pub id: String,
    pub node: String,
    pub kind: Kind,
    /// RFC 3339.
    pub created: String,
    /// When the fault was reported (the alert's start), for follow-ups too.
    pub reported: String,
    pub subject: String,
    pub summary: String,
    pub component: Option<String>,
    pub location: Location,
    /// A follow-up: the id of the report it follows (mail threads on it).
    pub in_reply_to: Option<String>,
    /// The webhook's JSON document: the report's own JSON, or the follow-up's.
    pub document: serde_json::Value,
    /// Plain text (Markdown) and HTML bodies for mail.
    pub text: String,
    pub html: String,
}

fn place(location: &Location) -> String {
    let parts: Vec<&str> = [
        &location.site,
        &location.room,
        &location.rack,
        &location.unit,
    ]
    .into_iter()
    .filter_map(|p| p.as_deref())
    .collect();
    if parts.is_empty() {
        "location unknown".to_owned()
    } else {
        parts.join("/")
    }
}

impl Message {
    /// The message for a fault report.
    pub fn report(id: &str, report: &FaultReport) -> Result<Self, serde_json::Error> {
        let component = report.component.as_deref().unwrap_or("unknown component");
        Ok(Self {
            id: id.to_owned(),
            node: report.node.clone(),
            kind: Kind::Report,
            created: report.created.clone(),
            reported: report.created.clone(),
            subject: format!(
                "[oob] {} needs hands: {component} ({})",
                report.node,
                place(&report.location)
            ),
            summary: report.summary.clone(),
            component: report.component.clone(),
            location: report.location.clone(),
            in_reply_to: None,
            document: serde_json::to_value(report)?,
            text: report.markdown(),
            html: report.html(),
        })
    }

    /// A follow-up on `report` (the message it follows, when there was one): `what` says
    /// what happened, `details` the lines that show it (the timeline since the report).
    pub fn follow_up(
        kind: Kind,
        id: &str,
        node: &str,
        created: &str,
        what: &str,
        details: &[String],
        report: Option<&Message>,
    ) -> Self {
        let (location, component, reported) = match report {
            Some(r) => (r.location.clone(), r.component.clone(), r.reported.clone()),
            None => (Location::default(), None, created.to_owned()),
        };
        let subject = match report {
            Some(r) => format!("Re: {}", r.subject),
            None => format!("[oob] {node}: {what}"),
        };
        let document = serde_json::json!({
            "kind": "follow-up",
            "event": kind.name(),
            "node": node,
            "created": created,
            "summary": what,
            "component": component,
            "location": location,
            "in_reply_to": report.map(|r| r.id.as_str()),
            "details": details,
        });
        let mut text = format!("# {node}: {what}\n\n");
        if let Some(r) = report {
            text += &format!(
                "Follows the fault report of {} ({}).\n\n",
                r.reported, r.summary
            );
        }
        for line in details {
            text += &format!("- {line}\n");
        }
        let mut html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n<h1>{}: {}</h1>\n",
            escape(&subject),
            escape(node),
            escape(what)
        );
        if let Some(r) = report {
            html += &format!(
                "<p>Follows the fault report of {} ({}).</p>\n",
                escape(&r.reported),
                escape(&r.summary)
            );
        }
        if !details.is_empty() {
            html += "<ul>\n";
            for line in details {
                html += &format!("<li>{}</li>\n", escape(line));
            }
            html += "</ul>\n";
        }
        html += "</body>\n</html>\n";
        Self {
            id: id.to_owned(),
            node: node.to_owned(),
            kind,
            created: created.to_owned(),
            reported,
            subject,
            summary: what.to_owned(),
            component,
            location,
            in_reply_to: report.map(|r| r.id.clone()),
            document,
            text,
            html,
        }
    }

    /// An Alertmanager `POST /api/v2/alerts` body: one alert per machine and component
    /// (the labels identify it), firing from the report, resolved by the follow-up that
    /// says the machine is back; "still down" sends it again (Alertmanager resolves an
    /// alert nobody repeats).
    /// `firing_until` is the `endsAt` of a firing alert: Alertmanager resolves an alert
    /// whose client stops repeating it after its own `resolve_timeout` (5 min by default),
    /// so a firing alert says how long it holds (until the next "still down", with room).
    pub fn alertmanager(
        &self,
        status_url: Option<&str>,
        firing_until: Option<&str>,
    ) -> serde_json::Value {
        let mut labels = BTreeMap::new();
        labels.insert("alertname", "OobFaultReport".to_owned());
        labels.insert("node", self.node.clone());
        labels.insert("severity", "critical".to_owned());
        if let Some(c) = &self.component {
            labels.insert("component", c.clone());
        }
        for (k, v) in [
            ("site", &self.location.site),
            ("room", &self.location.room),
            ("rack", &self.location.rack),
            ("unit", &self.location.unit),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                labels.insert(k, v.clone());
            }
        }
        let mut alert = serde_json::json!({
            "labels": labels,
            "annotations": {
                "summary": self.subject,
                "description": self.summary,
                "oob_message": self.id,
            },
            "startsAt": self.reported,
        });
        if self.kind.resolves() {
            alert["endsAt"] = serde_json::Value::String(self.created.clone());
        } else if let Some(until) = firing_until {
            alert["endsAt"] = serde_json::Value::String(until.to_owned());
        }
        if let Some(base) = status_url {
            alert["generatorURL"] = serde_json::Value::String(format!(
                "{}/node/{}",
                base.trim_end_matches('/'),
                self.node
            ));
        }
        serde_json::Value::Array(vec![alert])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The report module's sample, in a room (the mail routes pick by site and room).
    pub(crate) fn report() -> FaultReport {
        let mut r = crate::report::tests::sample();
        r.location.room = Some("hall-1".into());
        r
    }

    #[test]
    fn a_report_message_names_node_component_and_place_and_carries_the_report() {
        let m = Message::report("node-2/4/report", &report()).unwrap();
        assert_eq!(
            m.subject,
            "[oob] node-2 needs hands: Drive 3 (fra1/hall-1/r12/U7)"
        );
        assert_eq!(m.document["component"], "Drive 3");
        assert_eq!(m.document["recommended_action"], "replace Drive 3");
        assert!(m.html.contains("<h1>Fault report: node-2</h1>"));
        assert!(m.text.contains("replace Drive 3"));
        // Stored and read back unchanged.
        let back: Message = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_follow_up_threads_on_the_report_and_resolves_its_alert() {
        let r = Message::report("node-2/4/report", &report()).unwrap();
        let fired = r.alertmanager(Some("https://oob.example/"), None);
        assert_eq!(fired[0]["labels"]["component"], "Drive 3");
        assert_eq!(fired[0]["labels"]["rack"], "r12");
        assert_eq!(fired[0]["startsAt"], "2026-11-22T10:00:00Z");
        assert!(fired[0].get("endsAt").is_none());
        assert_eq!(fired[0]["generatorURL"], "https://oob.example/node/node-2");
        let back = Message::follow_up(
            Kind::Recovered,
            "node-2/4/recovered",
            "node-2",
            "2026-11-22T12:00:00Z",
            "back: Ready and healthy, uncordoned",
            &["<b>hard cycle</b>".into()],
            Some(&r),
        );
        assert_eq!(back.in_reply_to.as_deref(), Some("node-2/4/report"));
        assert!(back.subject.starts_with("Re: [oob] node-2 needs hands"));
        assert_eq!(back.document["event"], "recovered");
        assert!(back.html.contains("&lt;b&gt;hard cycle&lt;/b&gt;"));
        let resolved = back.alertmanager(None, Some("2026-11-22T20:00:00Z"));
        // The same labels (so it resolves the same alert), ended.
        assert_eq!(resolved[0]["labels"], fired[0]["labels"]);
        assert_eq!(resolved[0]["startsAt"], "2026-11-22T10:00:00Z");
        assert_eq!(resolved[0]["endsAt"], "2026-11-22T12:00:00Z");
        let still = Message::follow_up(
            Kind::StillDown,
            "node-2/4/still-down-1",
            "node-2",
            "2026-11-22T14:00:00Z",
            "still down after 4 hours",
            &[],
            Some(&r),
        );
        assert!(still.alertmanager(None, None)[0].get("endsAt").is_none());
        // Firing with a horizon: it holds until then, unless repeated or resolved.
        assert_eq!(
            still.alertmanager(None, Some("2026-11-22T20:00:00Z"))[0]["endsAt"],
            "2026-11-22T20:00:00Z"
        );
    }
}
