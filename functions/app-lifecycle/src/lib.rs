//! `app-lifecycle`: the public routes of the Marketplace apps. Connect (and Connect on Forge):
//! the app descriptor, the signed install and uninstall callbacks, and the configure page's link
//! request (`connect`). Forge Remote: the app's invocations and triggers (`forge`). Each request
//! is trusted only for what its Atlassian signature proves; a refusal is a 401 and one log line
//! naming the reason, never the token or the body.

use bridge::api::{Function, Router};
use bridge::app::App;

mod connect;
mod forge;

/// What the routes use, built once at cold start.
// Read by the Connect and Forge routes as they land (issue 14).
#[allow(dead_code)]
pub struct Context {
    connect: connect::Connect,
    forge: forge::Forge,
}

impl Context {
    pub fn new(app: &App) -> Result<Self, String> {
        Ok(Self { connect: connect::Connect::new(app)?, forge: forge::Forge::new(app)? })
    }
}

pub fn router() -> Router<Context> {
    forge::routes(connect::routes(Router::new(Function::AppLifecycle)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_serves_exactly_the_tables_app_routes() {
        router().check().unwrap();
    }
}
