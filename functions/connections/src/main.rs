#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge::app::serve(connections::handle).await
}
