//! Forge Remote: invocations and triggers of the Forge app.

use bridge::api::Router;
use bridge::app::App;

use crate::Context;

pub struct Forge {}

impl Forge {
    pub fn new(_app: &App) -> Result<Self, String> {
        Ok(Self {})
    }
}

pub fn routes(router: Router<Context>) -> Router<Context> {
    router
}
