#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    bridge::app::serve_with_events(
        publish_page::Context::new,
        publish_page::router(),
        publish_page::on_event,
        publish_page::dead_letter,
    )
    .await
}
