#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    bridge::app::serve_with_events(publish_page::handle, publish_page::on_event).await
}
