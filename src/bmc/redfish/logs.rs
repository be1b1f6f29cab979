//! The system event log over Redfish: find the right LogService (profile path, else
//! discovery by `Id`), read its entries across pages with a cap, clear it.

use serde_json::Value;
use tracing::debug;

use super::model::{self, Collection, LogEntry, LogService, Manager};
use super::RedfishBmc;
use crate::bmc::{BmcError, SelEntry, Severity};
use crate::timeouts;

impl RedfishBmc {
    /// The SEL's LogService.
    pub(super) async fn sel_service(&self) -> Result<LogService, BmcError> {
        if let Some(template) = &self.profile.redfish.sel_log_service {
            let path = if template.contains("{manager}") {
                template.replace("{manager}", &self.manager_path().await?)
            } else {
                template.replace("{system}", &self.system_path)
            };
            return self.client.get(&path).await;
        }
        let mut services = Vec::new();
        let mut collections = Vec::new();
        if let Some(link) = self.system().await?.log_services {
            collections.push(link.id);
        }
        if let Ok(manager) = self.manager_path().await {
            if let Some(link) = self.client.get::<Manager>(&manager).await?.log_services {
                collections.push(link.id);
            }
        }
        for path in collections {
            let c: Collection = self.client.get(&path).await?;
            services.extend(
                c.members
                    .iter()
                    .filter_map(model::member_id)
                    .map(str::to_owned),
            );
        }
        for wanted in &self.profile.redfish.sel_log_ids {
            for path in &services {
                let id = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                if id == wanted {
                    return self.client.get(path).await;
                }
            }
        }
        Err(BmcError::Unsupported {
            bmc: self.endpoint.authority(),
            what: format!(
                "no system event log among the LogServices [{}]; set sel_log_service in a profile",
                services.join(", ")
            ),
        })
    }

    pub(super) async fn read_sel(&self, max: usize) -> Result<Vec<SelEntry>, BmcError> {
        let service = self.sel_service().await?;
        let Some(entries) = service.entries else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut next = Some(entries.id);
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > timeouts::MAX_PAGES || out.len() >= max {
                break;
            }
            let page: Collection = self.client.get(&path).await?;
            for member in page.members {
                if out.len() >= max {
                    break;
                }
                out.push(self.entry(member).await?);
            }
            next = page.next_link;
        }
        debug!(bmc = %self.endpoint.authority(), entries = out.len(), pages, "sel read");
        Ok(out)
    }

    /// One entry: expanded in the collection, or fetched when the member is only a link.
    async fn entry(&self, member: Value) -> Result<SelEntry, BmcError> {
        let member = match (member.get("Id"), model::member_id(&member)) {
            (None, Some(link)) => self.client.get::<Value>(link).await?,
            _ => member,
        };
        let entry: LogEntry = serde_json::from_value(member).map_err(|e| BmcError::Malformed {
            url: self.endpoint.authority(),
            detail: format!("log entry: {e}"),
        })?;
        Ok(SelEntry {
            id: entry.id.unwrap_or_default(),
            created: entry.created,
            severity: Severity::from_redfish(entry.severity.as_deref()),
            message: entry.message.unwrap_or_default(),
            message_id: entry.message_id,
            sensor_type: entry.sensor_type,
        })
    }

    pub(super) async fn clear_log(&self) -> Result<(), BmcError> {
        let service = self.sel_service().await?;
        let target =
            model::action_target(&service.actions, "#LogService.ClearLog").ok_or_else(|| {
                BmcError::Unsupported {
                    bmc: self.endpoint.authority(),
                    what: "the event log has no ClearLog action".into(),
                }
            })?;
        let reply = self.client.post(&target, serde_json::json!({})).await?;
        self.client.expect_success(&target, reply)?;
        Ok(())
    }
}
