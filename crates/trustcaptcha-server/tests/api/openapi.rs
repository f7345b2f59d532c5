//! `docs/openapi.json` describes exactly the routes the public listener serves (schemathesis in
//! CI then checks the live server against it).

use std::collections::BTreeSet;

#[test]
fn the_openapi_description_names_every_route_and_no_other() {
    let text = include_str!("../../../../docs/openapi.json");
    let description: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
    assert_eq!(description["openapi"], "3.1.0");
    let documented: BTreeSet<&str> = description["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let served: BTreeSet<&str> = trustcaptcha_server::testing::routes()
        .iter()
        .copied()
        .collect();
    assert_eq!(documented, served);
}

#[test]
fn the_admin_openapi_description_names_every_admin_route_and_no_other() {
    let text = include_str!("../../../../docs/admin-openapi.json");
    let description: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
    assert_eq!(description["openapi"], "3.1.0");
    let documented: BTreeSet<&str> = description["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let served: BTreeSet<&str> = trustcaptcha_server::testing::admin_routes()
        .into_iter()
        .collect();
    assert_eq!(documented, served);
}
