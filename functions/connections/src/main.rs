#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge::app::serve_checked(connections::Context::new, connections::router()).await
}
