//! The actix-web integration against a real trustcaptcha-server, through actix's own test
//! utilities.
#![cfg(feature = "actix")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::server::{SERVER_API_KEY, start, token};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, test, web};
use serde_json::{Value, json};
use trustcaptcha::TrustCaptcha;
use trustcaptcha::guard::{Guard, Rejection, Verified};
use trustcaptcha::policy::{DecisionPolicy, FailoverPolicy, Policy};

fn guard(api_url: &str) -> Guard {
    Guard::new(
        TrustCaptcha::builder(SERVER_API_KEY)
            .api_host(api_url)
            .build()
            .expect("client"),
    )
}

#[actix_web::test]
async fn the_middleware_passes_verified_requests_with_the_body_intact_and_blocks_the_rest() {
    let server = start().await;
    let api = server.url.clone();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let app = test::init_service(
        App::new().app_data(web::Data::new(guard(&api))).service(
            web::resource("/signup")
                .wrap(from_fn(trustcaptcha::actix::middleware))
                .route(
                    web::post().to(move |verified: Verified, body: web::Json<Value>| {
                        let counter = counter.clone();
                        async move {
                            counter.fetch_add(1, Ordering::SeqCst);
                            HttpResponse::Ok().json(json!({
                                "email": body["email"],
                                "decision": format!("{:?}", verified.decision),
                            }))
                        }
                    }),
                ),
        ),
    )
    .await;

    let token = token(&server).await;
    let request = test::TestRequest::post()
        .uri("/signup")
        .set_json(json!({"email": "a@b.c", "verificationToken": token}))
        .to_request();
    let body: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(body, json!({"email": "a@b.c", "decision": "Allow"}));

    for (request, status, code) in [
        (json!({"email": "a@b.c"}), 400, "captcha_missing"),
        (json!({"verificationToken": "%%%"}), 400, "captcha_invalid"),
        (
            json!({"verificationToken": token}),
            403,
            "captcha_not_usable",
        ),
    ] {
        let request = test::TestRequest::post()
            .uri("/signup")
            .set_json(request)
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status().as_u16(), status);
        let body: Value = test::read_body_json(response).await;
        assert_eq!(body["error"], code);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the handler never ran for a rejected request"
    );
}

#[actix_web::test]
async fn the_form_field_is_read_and_policies_apply() {
    let server = start().await;
    let api = server.url.clone();
    let strict = Policy::new(DecisionPolicy::new(0.1), FailoverPolicy::default());
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(guard(&api).policy(strict)))
            .service(
                web::resource("/form")
                    .wrap(from_fn(trustcaptcha::actix::middleware))
                    .route(web::post().to(|| async { HttpResponse::Ok().finish() })),
            ),
    )
    .await;
    let request = test::TestRequest::post()
        .uri("/form")
        .set_form([
            ("email", "x@y.z"),
            ("tc-verification-token", token(&server).await.as_str()),
        ])
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(
        response.status().as_u16(),
        403,
        "the scripted browser's 0.5 is above 0.1"
    );
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["error"], "captcha_rejected");
}

#[actix_web::test]
async fn the_extractor_alone_reads_the_header_and_failover_is_judged() {
    let server = start().await;
    let api = server.url.clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let handler = |verified: Result<Verified, Rejection>| async move {
        match verified {
            Ok(verified) => {
                HttpResponse::Ok().json(json!({"hasResult": verified.result.is_some()}))
            }
            Err(rejection) => {
                HttpResponse::build(actix_web::http::StatusCode::IM_A_TEAPOT).body(rejection.code())
            }
        }
    };
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(guard(&api)))
            .route("/api", web::post().to(handler)),
    )
    .await;
    let request = test::TestRequest::post()
        .uri("/api")
        .insert_header(("x-trustcaptcha-token", token(&server).await))
        .to_request();
    let body: Value = test::call_and_read_body_json(&app, request).await;
    assert_eq!(body["hasResult"], true);
    let response =
        test::call_service(&app, test::TestRequest::post().uri("/api").to_request()).await;
    assert_eq!(response.status().as_u16(), 418);

    let unreachable = guard(&format!("http://{closed}"));
    let strict = Policy::new(DecisionPolicy::default(), FailoverPolicy::strict());
    let outage = Policy::new(
        DecisionPolicy::default(),
        FailoverPolicy::default().allow_before_first_answer(true),
    );
    for (guard, expected) in [
        (unreachable.clone(), 503),
        (unreachable.clone().policy(outage), 200),
        (unreachable.policy(strict), 503),
    ] {
        let app = test::init_service(App::new().app_data(web::Data::new(guard)).route(
            "/api",
            web::post().to(|_: Verified| async { HttpResponse::Ok().finish() }),
        ))
        .await;
        let request = test::TestRequest::post()
            .uri("/api")
            .insert_header(("x-trustcaptcha-token", token(&server).await))
            .to_request();
        assert_eq!(
            test::call_service(&app, request).await.status().as_u16(),
            expected
        );
    }

    let unconfigured = test::init_service(App::new().route(
        "/api",
        web::post().to(|_: Verified| async { HttpResponse::Ok().finish() }),
    ))
    .await;
    let response = test::call_service(
        &unconfigured,
        test::TestRequest::post().uri("/api").to_request(),
    )
    .await;
    assert_eq!(response.status().as_u16(), 500);
}
