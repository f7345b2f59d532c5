//! `docs/openapi.json` describes exactly the routes the public listener serves, and
//! `docs/admin-openapi.json` those of the admin listener's API (schemathesis in CI then checks
//! the live servers against them).

use std::collections::BTreeSet;

/// The paths an OpenAPI 3.1 description documents.
fn documented(text: &str) -> BTreeSet<String> {
    let description: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
    assert_eq!(description["openapi"], "3.1.0");
    description["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect()
}

fn owned<'a>(routes: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    routes.into_iter().map(str::to_owned).collect()
}

#[test]
fn the_openapi_description_names_every_route_and_no_other() {
    assert_eq!(
        documented(include_str!("../../../../docs/openapi.json")),
        owned(trustcaptcha_server::testing::routes().iter().copied())
    );
}

#[test]
fn the_admin_openapi_description_names_every_admin_route_and_no_other() {
    assert_eq!(
        documented(include_str!("../../../../docs/admin-openapi.json")),
        owned(trustcaptcha_server::testing::admin_routes())
    );
}
