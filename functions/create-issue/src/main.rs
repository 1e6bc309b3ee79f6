#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    bridge::app::serve_with_events(
        create_issue::Context::new,
        create_issue::router(),
        create_issue::on_event,
        create_issue::dead_letter,
    )
    .await
}
