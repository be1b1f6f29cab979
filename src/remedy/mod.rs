//! Remediation. [`stage`] is the pure ladder (Suspect → Confirm → SoftReboot → HardReboot →
//! Fenced → AwaitReplacement, with recovery to Healthy from every stage); [`guard`] holds the
//! interlocks that are decisions (storm guard, identity match); [`journal`] persists intents,
//! outcomes and ladder positions; [`executor`] carries out one remedy with every interlock.

pub mod decide;
pub mod executor;
pub mod governor;
pub mod guard;
pub mod journal;
pub mod replace;
pub mod stage;
