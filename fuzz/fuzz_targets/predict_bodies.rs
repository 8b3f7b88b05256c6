//! Prediction and embed-token requests: the supplied series of `event_volume_forecast` runs
//! through the real forecaster; the original `/predict` forms and embed-token bodies are parsed.
#![no_main]

use epai_fuzz::{assert_client_error, text};
use epai_server::parsing::{
    AttendanceForm, EmbedTokenRequest, ForecastRequest, LeadForm, forecast, parse_json,
    parse_origin,
};
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_json::<ForecastRequest>(data) {
        Ok(request) => {
            let outcome = forecast(request)
                .now_or_never()
                .expect("forecasting awaits nothing");
            match outcome {
                Ok(prediction) => {
                    assert!(prediction.value.is_finite(), "{}", prediction.value);
                    let confidence = prediction.confidence.expect("forecasts earn a confidence");
                    assert!((0.0..=1.0).contains(&confidence));
                }
                Err(error) => assert_client_error(&error, data),
            }
        }
        Err(error) => assert_client_error(&error, data),
    }
    for error in [
        parse_json::<AttendanceForm>(data).err(),
        parse_json::<LeadForm>(data).err(),
        parse_json::<EmbedTokenRequest>(data).err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_client_error(&error, data);
    }
    if let Some(raw) = text(data)
        && let Ok(origin) = parse_origin(raw)
    {
        assert!(origin.starts_with("http://") || origin.starts_with("https://"));
        assert!(!origin["https://".len()..].contains('/'), "{origin}");
    }
});
