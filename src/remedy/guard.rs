//! The interlocks that are decisions, not effects: whether the storm guard admits a
//! remediation now, and whether the BMC is the node's. Pure and table-tested; the executor
//! applies them.

use serde::Serialize;

use crate::bmc::Identity;

/// Storm guard settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormPolicy {
    pub max_concurrent: usize,
    pub max_unhealthy_percent: u8,
    pub cooldown_ms: u64,
}

/// The fleet as the guard sees it at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    pub total: usize,
    /// Machines not Healthy (any ladder stage past Healthy, or probes failing).
    pub unhealthy: usize,
    /// Remediations in flight (admitted and not finished).
    pub in_flight: usize,
    pub breaker_open: bool,
    /// The machine asking is a control-plane node (label
    /// `node-role.kubernetes.io/control-plane`).
    pub control_plane: bool,
    /// The machine asking still answers on the network (an OS problem, a live fault), so its
    /// etcd member may still be voting, and the remedy would take it down (a reboot, a
    /// fence; not a unit restart). A dark one's member is not voting.
    pub answering: bool,
    /// Other control-plane nodes that are not Healthy (down, confirming, remediating, or
    /// waiting for a person): each may be an etcd member that is not voting.
    pub control_plane_unhealthy: usize,
    /// Other control-plane nodes being remediated now.
    pub control_plane_remediating: usize,
    /// etcd as its members report it on another control-plane machine (a member can be
    /// down on a Node that is Ready); `None` when no control-plane machine can be asked (no
    /// SSH settings): then the Nodes stand for the members.
    pub etcd: Option<EtcdView>,
}

/// What asking etcd gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdView {
    Read(EtcdQuorum),
    /// Control-plane machines were asked and none told etcd's state: held back, a person
    /// looks.
    Unreadable(String),
}

/// etcd's voting members (learners do not vote), how many are healthy, and whether the
/// asking node's own member is one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdQuorum {
    pub voting: usize,
    pub healthy: usize,
    pub this_healthy: bool,
    /// The endpoints that are not healthy, with etcdctl's error, for the reason.
    pub down: String,
}

impl EtcdQuorum {
    /// Why taking the node down now would cost etcd its quorum: its member is healthy and
    /// the quorum holds with it but not without it. `None` when it would not (a member
    /// already down, or a quorum already lost, is not made worse by it).
    pub fn hold(&self) -> Option<String> {
        let quorum = self.voting / 2 + 1;
        let without = self.healthy.saturating_sub(usize::from(self.this_healthy));
        (self.this_healthy && self.healthy >= quorum && without < quorum).then(|| {
            format!(
                "without this node {without} of {} voting members are healthy; quorum needs {quorum} (down: {})",
                self.voting, self.down
            )
        })
    }
}

/// The label kubeadm puts on control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "admission", rename_all = "kebab-case")]
pub enum Admission {
    Go,
    /// Not now (concurrency, cooldown); asked again next round.
    Wait {
        reason: String,
    },
    /// The breaker is open: nothing mutates until a person resets it.
    Blocked {
        reason: String,
    },
    /// Open the breaker now, with this reason, and do nothing.
    Trip {
        reason: String,
    },
    /// Held back for a safety reason the Node should show (etcd's quorum): waits like
    /// `Wait`, and says so on the Node.
    Hold {
        reason: String,
    },
}

/// May one more remediation start? `last_recovered_ms` is when this node's previous
/// remediation ended.
pub fn admit(
    fleet: Fleet,
    p: &StormPolicy,
    now_ms: u64,
    last_recovered_ms: Option<u64>,
) -> Admission {
    if fleet.breaker_open {
        return Admission::Blocked {
            reason: "the breaker is open (oob breaker reset)".into(),
        };
    }
    let share = (fleet.unhealthy * 100)
        .checked_div(fleet.total)
        .unwrap_or(0);
    if share > usize::from(p.max_unhealthy_percent) {
        return Admission::Trip {
            reason: format!(
                "{} of {} machines ({share}%) are unhealthy, above the policy's {}%: the monitor may be the one cut off",
                fleet.unhealthy, fleet.total, p.max_unhealthy_percent
            ),
        };
    }
    // etcd quorum (the control-plane nodes stand for its members until the member list is
    // read): one control-plane node at a time; and a node that still answers may still be a
    // voting member, so it is not taken down while another member is down (with three, that
    // loses the quorum). A dark node votes no more: rebooting it takes nothing away.
    if fleet.control_plane && fleet.control_plane_remediating > 0 {
        return Admission::Hold {
            reason: format!(
                "held back to keep etcd's quorum: {} other control-plane node(s) being remediated; one at a time",
                fleet.control_plane_remediating
            ),
        };
    }
    if fleet.control_plane && fleet.answering && fleet.control_plane_unhealthy > 0 {
        return Admission::Hold {
            reason: format!(
                "held back to keep etcd's quorum: this node may still be a voting member and {} other control-plane node(s) are not healthy",
                fleet.control_plane_unhealthy
            ),
        };
    }
    // etcd's own word: taking down a healthy member that the quorum needs is held back (a
    // member already down, or a quorum already lost, is not made worse by this node).
    match fleet
        .etcd
        .as_ref()
        .filter(|_| fleet.control_plane && fleet.answering)
    {
        Some(EtcdView::Unreadable(why)) => {
            return Admission::Hold {
                reason: format!("held back to keep etcd's quorum: etcd could not be asked ({why})"),
            }
        }
        Some(EtcdView::Read(q)) => {
            if let Some(why) = q.hold() {
                return Admission::Hold {
                    reason: format!("held back to keep etcd's quorum: {why}"),
                };
            }
        }
        None => {}
    }
    if fleet.in_flight >= p.max_concurrent {
        return Admission::Wait {
            reason: format!(
                "{} remediations in flight (policy: at most {})",
                fleet.in_flight, p.max_concurrent
            ),
        };
    }
    if let Some(t) = last_recovered_ms {
        let since = now_ms.saturating_sub(t);
        if since < p.cooldown_ms {
            return Admission::Wait {
                reason: format!(
                    "cooldown: last remediation ended {} s ago (policy: {} s)",
                    since / 1000,
                    p.cooldown_ms / 1000
                ),
            };
        }
    }
    Admission::Go
}

/// What the BMC must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The Node's `status.nodeInfo.systemUUID`.
    pub system_uuid: Option<String>,
    /// The inventory's serial number.
    pub serial: Option<String>,
}

fn norm_uuid(u: &str) -> String {
    u.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase()
}

/// Is the machine behind this BMC the node? Every known fact must match, and at least one
/// must be known on both sides: nothing to compare is a refusal, not a pass.
pub fn same_machine(bmc: &Identity, expected: &Expected) -> Result<String, String> {
    let mut matched = Vec::new();
    match (&expected.system_uuid, &bmc.uuid) {
        (Some(want), Some(got)) if norm_uuid(want) == norm_uuid(got) => {
            matched.push(format!("UUID {}", norm_uuid(got)));
        }
        (Some(want), Some(got)) => {
            return Err(format!(
                "the BMC's system UUID is {got}, the node's is {want}: this BMC manages another machine"
            ))
        }
        (Some(_), None) => return Err("the BMC reports no system UUID to check".into()),
        (None, _) => {}
    }
    match (&expected.serial, &bmc.serial) {
        (Some(want), Some(got)) if want.trim().eq_ignore_ascii_case(got.trim()) => {
            matched.push(format!("serial {}", got.trim()));
        }
        (Some(want), Some(got)) => {
            return Err(format!(
                "the BMC's serial is {got}, the inventory's is {want}: this BMC manages another machine"
            ))
        }
        (Some(_), None) => return Err("the BMC reports no serial number to check".into()),
        (None, _) => {}
    }
    if matched.is_empty() {
        return Err(
            "nothing to check the BMC against: the node has no systemUUID and the inventory no serial"
                .into(),
        );
    }
    Ok(matched.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bmc::Protocol;

    const P: StormPolicy = StormPolicy {
        max_concurrent: 2,
        max_unhealthy_percent: 30,
        cooldown_ms: 60_000,
    };

    fn fleet(total: usize, unhealthy: usize, in_flight: usize, breaker_open: bool) -> Fleet {
        Fleet {
            total,
            unhealthy,
            in_flight,
            breaker_open,
            control_plane: false,
            answering: false,
            control_plane_unhealthy: 0,
            control_plane_remediating: 0,
            etcd: None,
        }
    }

    /// etcd's own view wins where the Nodes look fine: a member down on a Ready node holds
    /// an answering control-plane node back when taking it down would lose the quorum.
    #[test]
    fn etcd_members_down_on_ready_nodes_hold_a_control_plane_node_back() {
        let cp = |answering: bool, voting: usize, healthy: usize, this_healthy: bool| Fleet {
            control_plane: true,
            answering,
            etcd: Some(EtcdView::Read(EtcdQuorum {
                voting,
                healthy,
                this_healthy,
                down: "https://10.0.0.2:2379 (context deadline exceeded)".into(),
            })),
            ..fleet(20, 1, 0, false)
        };
        let hold = |a: &Admission| matches!(a, Admission::Hold { reason } if reason.contains("voting members are healthy") && reason.contains("deadline"));
        // Three members, all healthy: two stay, quorum is two.
        assert_eq!(
            admit(cp(true, 3, 3, true), &P, 100_000, None),
            Admission::Go
        );
        // Three, one down elsewhere (its Node Ready): one would stay.
        assert!(hold(&admit(cp(true, 3, 2, true), &P, 100_000, None)));
        // Five, one down elsewhere: three stay, quorum is three; two down: held.
        assert_eq!(
            admit(cp(true, 5, 4, true), &P, 100_000, None),
            Admission::Go
        );
        assert!(hold(&admit(cp(true, 5, 3, true), &P, 100_000, None)));
        // This node's own member is the one down: taking it takes nothing away.
        assert_eq!(
            admit(cp(true, 3, 2, false), &P, 100_000, None),
            Admission::Go
        );
        // The quorum is lost already: this node cannot make it worse.
        assert_eq!(
            admit(cp(true, 3, 1, true), &P, 100_000, None),
            Admission::Go
        );
        // A dark node votes no more: rebooting it takes nothing away.
        assert_eq!(
            admit(cp(false, 3, 2, true), &P, 100_000, None),
            Admission::Go
        );
        // Asked and no answer: held, a person looks.
        let unreadable = Fleet {
            etcd: Some(EtcdView::Unreadable("etcdctl on node-2 exited 1".into())),
            ..cp(true, 3, 3, true)
        };
        assert!(
            matches!(admit(unreadable, &P, 100_000, None), Admission::Hold { reason } if reason.contains("could not be asked"))
        );
    }

    #[test]
    fn a_control_plane_node_waits_while_another_one_is_not_healthy() {
        let cp = |answering: bool, unhealthy: usize, remediating: usize| Fleet {
            control_plane: true,
            answering,
            control_plane_unhealthy: unhealthy,
            control_plane_remediating: remediating,
            ..fleet(20, 2, 0, false)
        };
        let hold = |a: &Admission| matches!(a, Admission::Hold { reason } if reason.contains("etcd's quorum"));
        assert_eq!(admit(cp(true, 0, 0), &P, 100_000, None), Admission::Go);
        // One at a time, dark or not.
        assert!(hold(&admit(cp(false, 1, 1), &P, 100_000, None)));
        // A node that answers may still vote: not while another member is down.
        assert!(hold(&admit(cp(true, 1, 0), &P, 100_000, None)));
        // A dark one votes no more: the first of two dark ones goes.
        assert_eq!(admit(cp(false, 1, 0), &P, 100_000, None), Admission::Go);
        // A worker is not held back by an unhealthy control-plane node.
        let worker = Fleet {
            control_plane_unhealthy: 1,
            ..fleet(20, 2, 0, false)
        };
        assert_eq!(admit(worker, &P, 100_000, None), Admission::Go);
        // The breaker still wins.
        let blocked = admit(
            Fleet {
                breaker_open: true,
                ..cp(true, 1, 1)
            },
            &P,
            100_000,
            None,
        );
        assert!(matches!(blocked, Admission::Blocked { .. }));
    }

    #[test]
    fn admission_table() {
        let go = |a: &Admission| matches!(a, Admission::Go);
        let wait = |a: &Admission| matches!(a, Admission::Wait { .. });
        let trip = |a: &Admission| matches!(a, Admission::Trip { .. });
        let blocked = |a: &Admission| matches!(a, Admission::Blocked { .. });
        type Row = (Fleet, Option<u64>, fn(&Admission) -> bool);
        let rows: Vec<Row> = vec![
            (fleet(20, 1, 0, false), None, go),
            (fleet(20, 6, 1, false), None, go), // 30 %: at the limit
            (fleet(20, 7, 0, false), None, trip), // 35 %
            (fleet(20, 8, 0, false), None, trip), // the storm test's 40 %
            (fleet(20, 1, 2, false), None, wait), // concurrency
            (fleet(20, 1, 0, true), None, blocked), // breaker wins over all
            (fleet(20, 9, 5, true), None, blocked),
            (fleet(20, 1, 0, false), Some(50_000), wait), // 50 s after the last: cooldown
            (fleet(20, 1, 0, false), Some(30_000), go),   // 70 s after
            (fleet(0, 0, 0, false), None, go),
        ];
        for (f, last, want) in rows {
            let a = admit(f.clone(), &P, 100_000, last);
            assert!(want(&a), "{f:?} last={last:?} gave {a:?}");
        }
    }

    fn identity(uuid: Option<&str>, serial: Option<&str>) -> Identity {
        Identity {
            protocol: Protocol::Redfish,
            manufacturer: None,
            model: None,
            serial: serial.map(str::to_owned),
            uuid: uuid.map(str::to_owned),
            bios_version: None,
            bmc_firmware: None,
        }
    }

    #[test]
    fn identity_table() {
        let u = "5A1D0000-0000-4000-8000-000000000001";
        let expect = |uuid: Option<&str>, serial: Option<&str>| Expected {
            system_uuid: uuid.map(str::to_owned),
            serial: serial.map(str::to_owned),
        };
        let rows = [
            (
                identity(Some(u), None),
                expect(Some(&u.to_lowercase()), None),
                true,
            ),
            (
                identity(Some(u), Some("S1")),
                expect(Some(u), Some("s1")),
                true,
            ),
            (
                identity(Some(u), Some("S1")),
                expect(None, Some("S1")),
                true,
            ),
            (
                identity(Some(u), Some("S1")),
                expect(Some(u), Some("S2")),
                false,
            ),
            (
                identity(Some(u), None),
                expect(Some("5a1d0000-0000-4000-8000-000000000002"), None),
                false,
            ),
            (
                identity(None, Some("S1")),
                expect(Some(u), Some("S1")),
                false,
            ),
            (identity(Some(u), Some("S1")), expect(None, None), false),
            (
                identity(Some(&format!("{{{u}}}")), None),
                expect(Some(u), None),
                true,
            ),
        ];
        for (bmc, want, ok) in rows {
            let r = same_machine(&bmc, &want);
            assert_eq!(r.is_ok(), ok, "{bmc:?} vs {want:?}: {r:?}");
        }
    }
}
