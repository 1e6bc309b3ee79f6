//! Connect (and Connect on Forge): descriptor, lifecycle, configure-page link.

use bridge::api::Router;
use bridge::app::App;

use crate::Context;

pub struct Connect {}

impl Connect {
    pub fn new(_app: &App) -> Result<Self, String> {
        Ok(Self {})
    }
}

pub fn routes(router: Router<Context>) -> Router<Context> {
    router
}
