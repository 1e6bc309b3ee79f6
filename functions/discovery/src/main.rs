use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let caches = Arc::new(discovery::Caches::default());
    bridge::app::serve(move |app, req| discovery::handle(app, caches.clone(), req)).await
}
