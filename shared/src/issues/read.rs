//! The read model: `GET /v1/tenants/{tenant}/action-items` lists the action items we created
//! issues for, with the issue, the report they came from and the issue's last known Jira state,
//! from the ledger alone (no Jira call: the sync keeps the state fresh).
//!
//! Pages are opaque tokens: the position and the filters they were made for, tagged with the
//! deployment's keyed HMAC ([`Markers::cursor_tag`]) under the tenant. A token edited by hand, cut
//! short, or taken from another tenant's listing is refused with `400 invalid_cursor` rather than
//! read, so no caller can steer the ledger query with one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::state::{JiraState, StatusCategory};
use crate::domain::TenantId;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{ItemId, ReportId};
use crate::markers::Markers;
use crate::store::{CreatedItem, ItemFilter, ItemPage};

/// Items per page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

/// The tag's purpose label: a token of another listing never reads as one of this.
const PURPOSE: &str = "action-items";

/// One action item we created an issue for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionItemView {
    pub action_item_id: String,
    /// The `report_id` the item was sent with.
    #[serde(default)]
    pub report_id: Option<ReportId>,
    pub issue_key: String,
    pub issue_id: String,
    /// The site the issue is on: the Cloud cloudId, or the Server/DC base URL (`null` for issues
    /// recorded before sites were).
    #[serde(default)]
    pub site: Option<String>,
    /// The issue was deleted (through this API, or found gone in Jira).
    pub deleted: bool,
    /// Its last known Jira state; `null` until the sync first saw it.
    #[serde(default)]
    pub state: Option<JiraState>,
    /// When the sync last saw the issue; `null` until then.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub synced_at: Option<OffsetDateTime>,
}

impl From<CreatedItem> for ActionItemView {
    fn from(item: CreatedItem) -> Self {
        Self {
            action_item_id: item.item_id.into_string(),
            report_id: item.report_id,
            issue_key: item.key.into_string(),
            issue_id: item.id.into_string(),
            site: item.site.map(|s| s.into_string()),
            deleted: item.deleted,
            state: item.state,
            synced_at: item.synced_at,
        }
    }
}

/// `GET /v1/tenants/{tenant}/action-items`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionItemList {
    /// In action-item-id order. A page may hold fewer than `limit` items (even none) and still
    /// have a next one: each page looks at a bounded slice of the ledger, however sparse the filter.
    pub items: Vec<ActionItemView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// What a listing request asks for, parsed from its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub filter: ItemFilter,
    pub after: Option<ItemId>,
    pub limit: usize,
}

/// The token's content: where the next page starts, and the filters it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    report_id: Option<ReportId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status_category: Option<StatusCategory>,
}

fn bad_cursor() -> ApiError {
    ApiError::new(ErrorCode::InvalidCursor, "cursor is not one this API returned for this tenant; start without it")
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

impl Listing {
    /// Reads `report_id`, `status_category`, `cursor` and `limit`. With a cursor, the filters
    /// are the cursor's; filters given beside it must be the same (a page of another listing
    /// would skip or repeat items).
    pub fn parse(
        markers: &Markers,
        tenant: &TenantId,
        report_id: Option<&str>,
        status_category: Option<&str>,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Self, ApiError> {
        let report_id = report_id
            .map(|r| ReportId::parse(r).map_err(|rule| bad_request(format!("report_id {rule}"))))
            .transpose()?;
        let status_category = status_category
            .map(|c| match StatusCategory::from_key(c) {
                StatusCategory::Unknown if c != "unknown" => {
                    Err(bad_request("status_category must be new, indeterminate, done or unknown"))
                }
                category => Ok(category),
            })
            .transpose()?;
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| bad_request(format!("limit must be a whole number from 1 to {MAX_LIMIT}")))?,
        };
        let Some(cursor) = cursor else {
            return Ok(Self { filter: ItemFilter { report_id, status_category }, after: None, limit });
        };
        let position = decode(markers, tenant, cursor)?;
        let differs = report_id.as_ref().is_some_and(|r| position.report_id.as_ref() != Some(r))
            || status_category.is_some_and(|c| position.status_category != Some(c));
        if differs {
            return Err(ApiError::new(
                ErrorCode::InvalidCursor,
                "cursor was made for other filters; pass the same report_id and status_category, or none",
            ));
        }
        let filter = ItemFilter { report_id: position.report_id, status_category: position.status_category };
        Ok(Self { filter, after: Some(ItemId::new(position.after)), limit })
    }

    /// The answer for one ledger page.
    pub fn answer(&self, markers: &Markers, tenant: &TenantId, page: ItemPage) -> ActionItemList {
        let next_cursor = page.resume_after.map(|after| {
            let position = Position {
                after: after.into_string(),
                report_id: self.filter.report_id.clone(),
                status_category: self.filter.status_category,
            };
            encode(markers, tenant, &position)
        });
        ActionItemList { items: page.items.into_iter().map(ActionItemView::from).collect(), next_cursor }
    }
}

fn encode(markers: &Markers, tenant: &TenantId, position: &Position) -> String {
    let payload = B64.encode(serde_json::to_vec(position).unwrap_or_default());
    let tag = markers.cursor_tag(PURPOSE, tenant.as_str(), &payload);
    format!("{payload}.{tag}")
}

fn decode(markers: &Markers, tenant: &TenantId, cursor: &str) -> Result<Position, ApiError> {
    let (payload, tag) = cursor.split_once('.').ok_or_else(bad_cursor)?;
    if !markers.cursor_tag_matches(PURPOSE, tenant.as_str(), payload, tag) {
        return Err(bad_cursor());
    }
    let position: Position =
        B64.decode(payload).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or_else(bad_cursor)?;
    // Tagged by us, so it is an item id we listed; checked anyway, as every id on the way in.
    if position.after.is_empty() || position.after.len() > 128 {
        return Err(bad_cursor());
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers() -> Markers {
        Markers::derive(&[3u8; 32])
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn page_after(after: &str) -> ItemPage {
        ItemPage { items: Vec::new(), resume_after: Some(ItemId::new(after)) }
    }

    #[test]
    fn a_cursor_reads_back_as_its_position_and_filters() {
        let (m, t) = (markers(), tenant("acme"));
        let first = Listing::parse(&m, &t, Some("r-1"), Some("done"), None, Some("10")).unwrap();
        assert_eq!(first.limit, 10);
        let cursor = first.answer(&m, &t, page_after("ai-7")).next_cursor.unwrap();
        let next = Listing::parse(&m, &t, None, None, Some(&cursor), Some("10")).unwrap();
        assert_eq!(next.after, Some(ItemId::new("ai-7")));
        assert_eq!(next.filter, first.filter);
        // The same filters beside the cursor are fine; other ones are not.
        assert!(Listing::parse(&m, &t, Some("r-1"), None, Some(&cursor), None).is_ok());
        let other = Listing::parse(&m, &t, Some("r-2"), None, Some(&cursor), None).unwrap_err();
        assert_eq!(other.code, "invalid_cursor");
        let last = first.answer(&m, &t, ItemPage { items: Vec::new(), resume_after: None });
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn a_tampered_or_foreign_cursor_is_refused() {
        let (m, t) = (markers(), tenant("acme"));
        let listing = Listing::parse(&m, &t, None, None, None, None).unwrap();
        let cursor = listing.answer(&m, &t, page_after("ai-7")).next_cursor.unwrap();
        let (payload, tag) = cursor.split_once('.').unwrap();
        let forged_payload = B64.encode(br#"{"after":"ai-0"}"#);
        let mut flipped = tag.to_owned().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        for bad in [
            format!("{forged_payload}.{tag}"),
            format!("{payload}.{}", String::from_utf8(flipped).unwrap()),
            payload.to_owned(),
            format!("{payload}.{}", &tag[..8]),
            "not-a-cursor".to_owned(),
        ] {
            let refused = Listing::parse(&m, &t, None, None, Some(&bad), None).unwrap_err();
            assert_eq!(refused.code, "invalid_cursor", "{bad}");
        }
        // Another tenant's, or another deployment's, cursor is no cursor here.
        assert!(Listing::parse(&m, &tenant("other"), None, None, Some(&cursor), None).is_err());
        assert!(Listing::parse(&Markers::derive(&[4u8; 32]), &t, None, None, Some(&cursor), None).is_err());
    }

    #[test]
    fn filters_and_limits_are_checked() {
        let (m, t) = (markers(), tenant("acme"));
        for (report, category, limit) in [
            (Some("has space"), None, None),
            (None, Some("finished"), None),
            (None, None, Some("0")),
            (None, None, Some("101")),
        ] {
            let refused = Listing::parse(&m, &t, report, category, None, limit).unwrap_err();
            assert_eq!(refused.code, "invalid_request");
        }
        let unknown = Listing::parse(&m, &t, None, Some("unknown"), None, None).unwrap();
        assert_eq!(unknown.filter.status_category, Some(StatusCategory::Unknown));
    }
}
