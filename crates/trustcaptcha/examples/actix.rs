//! The guide's complete actix-web example: `POST /api/example` with `{"verificationToken": …}`
//! fetches and evaluates the result and returns it as JSON (500 with an error body when the
//! result cannot be fetched).
//!
//! ```sh
//! cargo run --example actix          # serves on 127.0.0.1:3000 (EXAMPLE_LISTEN) and prints a curl command
//! ```
//!
//! Differences from the guide's listing, none visible to a caller: the client is built once and
//! shared through `web::Data` (the guide builds one per request; ours holds a connection pool,
//! so sharing it is what makes it fast), and the request is logged without its token.
//! `TRUSTCAPTCHA_EXAMPLE_SELF_TEST=1` makes it call itself once on a free port and exit.

// The guide's lines are kept as the guide writes them.
#![allow(clippy::uninlined_format_args)]

#[path = "support/sandbox.rs"]
mod sandbox;

use actix_cors::Cors;
use actix_web::{App, Error, HttpResponse, HttpServer, middleware::Logger, web};
use log::{error, info};
use serde::Deserialize;
use serde_json::json;
use trustcaptcha::trust_captcha::TrustCaptcha;

#[derive(Deserialize, Debug)]
struct VerificationRequest {
    #[serde(rename = "verificationToken")]
    verification_token: String,
}

async fn post_api_example(
    trust_captcha: web::Data<TrustCaptcha>,
    verification_request: web::Json<VerificationRequest>,
) -> Result<HttpResponse, Error> {
    info!("Received a verification request");

    let verification_token = &verification_request.verification_token;

    // Retrieving the verification result
    let verification_result = match trust_captcha
        .get_verification_result(verification_token)
        .await
    {
        Ok(result) => result,
        Err(e) => {
            // Fetch verification result failed - handle error
            error!("Failed to fetch verification result: {}", e);
            return Ok(HttpResponse::InternalServerError()
                .json(json!({"error": "Captcha verification failed"})));
        }
    };

    // Act on the verification result
    if !verification_result.verification_passed || verification_result.score > 0.5 {
        info!("Verification failed or bot score > 0.5 – possible automated request.");
    }

    Ok(HttpResponse::Ok().json(verification_result))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    env_logger::init_from_env(env_logger::Env::default().default_filter_or("info"));
    let sandbox = sandbox::Sandbox::start().await?;
    let trust_captcha = web::Data::new(
        TrustCaptcha::builder(&sandbox.api_key)
            .api_host(&sandbox.api_host)
            .build()?,
    );
    let self_test = std::env::var_os("TRUSTCAPTCHA_EXAMPLE_SELF_TEST").is_some();
    // EXAMPLE_LISTEN, or 127.0.0.1:3000 (not the server's 8080); any free port in the self-test.
    let listen = match std::env::var("EXAMPLE_LISTEN") {
        _ if self_test => "127.0.0.1:0".to_owned(),
        Ok(address) => address,
        Err(_) => "127.0.0.1:3000".to_owned(),
    };

    let server = HttpServer::new(move || {
        let cors = Cors::default()
            .allow_any_origin()
            .allow_any_method()
            .allow_any_header()
            .max_age(3600);

        App::new()
            .app_data(trust_captcha.clone())
            .wrap(cors)
            .wrap(Logger::default())
            .route("/api/example", web::post().to(post_api_example))
    })
    .bind(&listen)
    .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
    let address = server.addrs()[0];
    let server = server.run();

    let token = sandbox.token().await?;
    let body = json!({ "verificationToken": token });
    if self_test {
        let handle = server.handle();
        let check = tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(format!("http://{address}/api/example"))
                .json(&body)
                .send()
                .await?;
            let status = response.status();
            let text = response.text().await?;
            handle.stop(true).await;
            Ok::<_, reqwest::Error>((status, text))
        });
        server.await?;
        let (status, text) = check.await??;
        println!("POST /api/example -> {status}\n{text}");
        if !status.is_success() {
            return Err(format!("self-test failed with {status}").into());
        }
        return Ok(());
    }
    println!(
        "try it:\n  curl -s -X POST http://{address}/api/example -H 'content-type: application/json' -d '{body}'"
    );
    server.await?;
    Ok(())
}
