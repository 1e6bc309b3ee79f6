#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge::app::serve_checked(app_lifecycle::Context::new, app_lifecycle::router()).await
}
