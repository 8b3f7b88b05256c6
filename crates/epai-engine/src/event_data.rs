//! Model inputs read from the `data` of a partner's events, in the shapes the original product
//! documented (COMPAT.md) and the spellings real integrations used (`attendee_count` or
//! `attendees`, `leadId` or `lead_id`, camelCase or snake_case).
//!
//! Shared by the worker (insights) and the server (`predict`), so both learn from the same
//! records. Fields that cannot be read leave the event out, or take a documented default; they
//! never fail the whole set.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::attendance::{AttendanceQuery, AttendanceRecord};
use crate::lead::{LeadExample, LeadFeatures};

/// One stored event: when it happened and its `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventData {
    pub occurred_at: DateTime<Utc>,
    pub data: Value,
}

/// The first of `keys` present as a finite number (or a string holding one).
fn number(data: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter()
        .find_map(|k| data.get(*k))
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()))
        .filter(|v: &f64| v.is_finite())
}

fn text(data: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| data.get(*k))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn capacity(data: &Value) -> Option<u32> {
    number(data, &["capacity", "venue_capacity", "venueCapacity"])
        .filter(|c| *c >= 1.0 && *c <= f64::from(u32::MAX))
        .map(|c| c as u32)
}

fn event_date(event: &EventData) -> NaiveDate {
    text(&event.data, &["event_date", "eventDate"])
        .and_then(|d| d.get(..10)?.parse().ok())
        .unwrap_or_else(|| event.occurred_at.date_naive())
}

/// A past event from an `event_attendance` event that carries its capacity and attendee count.
/// Missing fields default: venue and genre "unknown", price and budget 0, the event date the
/// day it happened.
pub fn attendance_record(event: &EventData) -> Option<AttendanceRecord> {
    let data = &event.data;
    let capacity = capacity(data)?;
    let attendees = number(data, &["attendee_count", "attendees", "attendeeCount"])?;
    if attendees < 0.0 {
        return None;
    }
    Some(AttendanceRecord {
        venue: text(data, &["venue_id", "venue"]).unwrap_or_else(|| "unknown".into()),
        event_date: event_date(event),
        genre: text(data, &["genre"]).unwrap_or_else(|| "unknown".into()),
        ticket_price: number(data, &["ticket_price", "ticketPrice"]).unwrap_or(0.0),
        marketing_budget: number(data, &["marketing_budget", "marketingBudget"]).unwrap_or(0.0),
        capacity,
        attendee_count: attendees.min(f64::from(capacity)) as u32,
        lead_time_days: lead_time_days(data),
    })
}

fn lead_time_days(data: &Value) -> Option<u32> {
    number(data, &["lead_time_days", "leadTimeDays"])
        .filter(|d| *d >= 0.0 && *d <= f64::from(u32::MAX))
        .map(|d| d as u32)
}

/// An `event_attendance` event announcing an event after `today` (no attendee count yet): what
/// the attendance insight forecasts.
pub fn planned_event(event: &EventData, today: NaiveDate) -> Option<AttendanceQuery> {
    let data = &event.data;
    let date = event_date(event);
    if date <= today || number(data, &["attendee_count", "attendees", "attendeeCount"]).is_some() {
        return None;
    }
    let ticket_price = number(data, &["ticket_price", "ticketPrice"]).unwrap_or(0.0);
    let marketing_budget = number(data, &["marketing_budget", "marketingBudget"]).unwrap_or(0.0);
    Some(AttendanceQuery {
        venue: text(data, &["venue_id", "venue"]).unwrap_or_else(|| "unknown".into()),
        event_date: date,
        genre: text(data, &["genre"]).unwrap_or_else(|| "unknown".into()),
        ticket_price: ticket_price.max(0.0),
        marketing_budget: marketing_budget.max(0.0),
        venue_capacity: capacity(data)?,
        lead_time_days: lead_time_days(data),
    })
}

/// The features of a `lead` event, from its data or its `attributes`; absent counts are 0.
pub fn lead_features(data: &Value) -> LeadFeatures {
    let attributes = data.get("attributes").unwrap_or(&Value::Null);
    let field = |keys: &[&str]| {
        number(data, keys)
            .or_else(|| number(attributes, keys))
            .unwrap_or(0.0)
    };
    LeadFeatures {
        engagement_score: field(&["engagementScore", "engagement_score"]),
        previous_purchases: field(&["previousPurchases", "previous_purchases"]),
        website_visits: field(&["websiteVisits", "website_visits"]),
        email_opens: field(&["emailOpens", "email_opens"]),
        social_media_engagement: field(&["socialMediaEngagement", "social_media_engagement"]),
        age: number(data, &["age"]).or_else(|| number(attributes, &["age"])),
    }
}

/// Leads labelled by their outcome: a lead converted when a sale at or after it names it, by
/// lead id (`userId`, `leadId` or `user_id` of the sale) or by email.
pub fn lead_examples(leads: &[EventData], sales: &[EventData]) -> Vec<LeadExample> {
    let buyers: Vec<(DateTime<Utc>, Option<String>, Option<String>)> = sales
        .iter()
        .map(|sale| {
            (
                sale.occurred_at,
                text(&sale.data, &["userId", "leadId", "user_id", "lead_id"]),
                text(&sale.data, &["email", "customerEmail"]),
            )
        })
        .collect();
    leads
        .iter()
        .map(|lead| {
            let id = text(&lead.data, &["leadId", "lead_id", "userId", "user_id"]);
            let email = text(&lead.data, &["email", "customerEmail"]);
            let converted = buyers.iter().any(|(sold_at, buyer, buyer_email)| {
                *sold_at >= lead.occurred_at
                    && ((id.is_some() && buyer == &id)
                        || (email.is_some() && buyer_email == &email))
            });
            LeadExample {
                features: lead_features(&lead.data),
                converted,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
    }

    fn event(day: u32, data: Value) -> EventData {
        EventData {
            occurred_at: at(day),
            data,
        }
    }

    #[test]
    fn attendance_is_read_in_the_documented_shape_and_common_spellings() {
        let documented = event(
            3,
            json!({"event_id": "e1", "venue_id": "hall", "attendee_count": 420,
                   "capacity": 500, "event_date": "2026-11-02T20:00:00Z"}),
        );
        let record = attendance_record(&documented).unwrap();
        assert_eq!(record.venue, "hall");
        assert_eq!(record.genre, "unknown");
        assert_eq!(
            record.event_date,
            NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()
        );
        assert_eq!((record.capacity, record.attendee_count), (500, 420));

        let spelled = event(
            4,
            json!({"attendees": "900", "venueCapacity": 600, "ticketPrice": 20}),
        );
        let record = attendance_record(&spelled).unwrap();
        assert_eq!(record.attendee_count, 600, "capped at capacity");
        assert_eq!(record.event_date, at(4).date_naive());
        assert_eq!(record.ticket_price, 20.0);

        for unusable in [
            json!({"capacity": 0, "attendee_count": 1}),
            json!({"capacity": 100}),
            json!({"capacity": 100, "attendee_count": -3}),
            json!({"capacity": "lots", "attendee_count": 3}),
        ] {
            assert_eq!(attendance_record(&event(5, unusable)), None);
        }
    }

    #[test]
    fn a_planned_event_is_one_after_today_without_attendees() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let planned = event(
            18,
            json!({"venue_id": "hall", "capacity": 300, "event_date": "2026-11-28",
                   "genre": "jazz", "ticket_price": 35, "marketing_budget": 900}),
        );
        let query = planned_event(&planned, today).unwrap();
        assert_eq!(
            query.event_date,
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
        );
        assert_eq!((query.venue_capacity, query.genre.as_str()), (300, "jazz"));
        let past = event(18, json!({"capacity": 300, "event_date": "2026-11-19"}));
        assert_eq!(planned_event(&past, today), None);
        let counted = event(
            18,
            json!({"capacity": 300, "event_date": "2026-11-28", "attendee_count": 20}),
        );
        assert_eq!(planned_event(&counted, today), None);
    }

    #[test]
    fn a_lead_converts_when_a_later_sale_names_it_by_id_or_email() {
        let leads = [
            event(
                1,
                json!({"leadId": "l1", "attributes": {"engagement_score": 80}}),
            ),
            event(1, json!({"leadId": "l2", "email": "b@example.com"})),
            event(5, json!({"leadId": "l3", "engagementScore": "12"})),
            event(1, json!({"leadId": "l4"})),
        ];
        let sales = [
            event(2, json!({"userId": "l1", "value": 10})),
            event(3, json!({"email": "b@example.com"})),
            event(4, json!({"userId": "l3"})),
        ];
        let examples = lead_examples(&leads, &sales);
        let converted: Vec<bool> = examples.iter().map(|e| e.converted).collect();
        assert_eq!(
            converted,
            [true, true, false, false],
            "l3 bought before it was a lead"
        );
        assert_eq!(examples[0].features.engagement_score, 80.0);
        assert_eq!(examples[2].features.engagement_score, 12.0);
        assert_eq!(examples[3].features.age, None);
    }
}
