#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge::app::serve(discovery::Context::new, discovery::router()).await
}
