//! The portal's URL-encoded form bodies and query strings, read by axum's `Form` and `Query`
//! exactly as the portal's `CheckedForm` and page handlers read them.
#![no_main]

use axum::body::Body;
use axum::extract::{Form, FromRequest, Query};
use axum::http::{Request, Uri, header};
use epai_server::parsing::{
    Credentials, CsrfField, EventQuery, LogQuery, LoginNotice, NoFields, PlaygroundForm,
    SettingsFields, SignupFields, ThemeChoice, WebhookForm,
};
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn form<T: DeserializeOwned>(data: &[u8]) {
    let request = Request::post("/portal/form")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(data.to_vec()))
        .expect("a valid request");
    let parsed = Form::<T>::from_request(request, &())
        .now_or_never()
        .expect("an in-memory body is read at once");
    if let Err(rejection) = parsed {
        let status = axum::response::IntoResponse::into_response(rejection).status();
        assert!(status.is_client_error(), "{status}");
    }
}

fn query<T: DeserializeOwned>(uri: &Uri) {
    let _ = Query::<T>::try_from_uri(uri);
}

fuzz_target!(|data: &[u8]| {
    form::<CsrfField>(data);
    form::<NoFields>(data);
    form::<Credentials>(data);
    form::<SignupFields>(data);
    form::<ThemeChoice>(data);
    form::<PlaygroundForm>(data);
    form::<SettingsFields>(data);
    form::<WebhookForm>(data);
    if let Some(uri) = std::str::from_utf8(data)
        .ok()
        .and_then(|text| format!("/portal/logs?{text}").parse::<Uri>().ok())
    {
        query::<LogQuery>(&uri);
        query::<EventQuery>(&uri);
        query::<LoginNotice>(&uri);
    }
});
