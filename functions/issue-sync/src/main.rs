#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    issue_sync::serve().await
}
