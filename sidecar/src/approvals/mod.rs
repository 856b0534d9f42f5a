//! Approvals (SPEC §2.3): the requests this sidecar holds statements for ([`desk`]), the
//! session stage that holds them ([`stage`]), and the admin endpoint's routes that list
//! and decide them ([`http`]).

pub mod cluster;
pub mod desk;
pub mod estimate;
pub mod http;
pub mod stage;

pub use cluster::ClusterApprovals;
pub use desk::ApprovalDesk;
pub use estimate::ExplainProbe;
pub use stage::{ApprovalStage, Estimating, Judged};
