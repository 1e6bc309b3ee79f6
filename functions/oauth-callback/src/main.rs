#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge::app::serve_checked(oauth_callback::Context::new, oauth_callback::router()).await
}
