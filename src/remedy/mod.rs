//! Remediation. [`stage`] is the pure ladder (Suspect → Confirm → SoftReboot → HardReboot →
//! Fenced → AwaitReplacement, with recovery to Healthy from every stage). The executor with
//! the safety interlocks (identity check, journal, governor, storm guard) comes next.

pub mod stage;
