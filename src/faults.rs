//! Fault injection for the test tiers. Production code never installs a
//! hook: `app::start` passes `Faults::none()`. Tests use
//! `app::start_with_faults` to make a handler panic or stall on purpose and
//! check that the service survives it.

use std::sync::Arc;

/// Called with the request path before a handler routes the request.
pub type HandlerHook = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone, Default)]
pub struct Faults {
    pub handler: Option<HandlerHook>,
}

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("handler", &self.handler.is_some())
            .finish()
    }
}
