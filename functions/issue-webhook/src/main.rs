#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge::app::serve_checked(issue_webhook::Context::new, issue_webhook::router()).await
}
