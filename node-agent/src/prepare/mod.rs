//! Device preparation (wipe/zap) and node readiness checks. Owned by the device-preparation
//! work (issue 4); the server calls these two entry points.

use rookery_proto::{
    AgentError, ErrorCode, Event, PrepareRequest, ReadinessRequest, Response,
};

pub fn handle_prepare(_req: &PrepareRequest, _emit: &mut dyn FnMut(Event)) -> Response {
    Response::Error(AgentError {
        code: ErrorCode::Internal,
        message: "prepare is not implemented yet".into(),
    })
}

pub fn handle_readiness(_req: &ReadinessRequest) -> Response {
    Response::Error(AgentError {
        code: ErrorCode::Internal,
        message: "readiness checks are not implemented yet".into(),
    })
}
