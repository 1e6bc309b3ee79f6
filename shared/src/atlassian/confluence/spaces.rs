//! Spaces: one by key (the only space lookup), the list, and a one-space read that proves
//! credentials where the current-user endpoint is out of scope.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::super::{AtlassianError, Class, Flavour, Session, encode, loose};
use super::Links;
use crate::ids::{PageId, SpaceId, SpaceKey};

/// A space. Cloud v2 addresses it by id, Server/DC by key.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    pub key: SpaceKey,
    /// Cloud's space id; `None` on Server/DC.
    pub id: Option<SpaceId>,
    pub name: Option<String>,
    /// `global`, `personal`, ...
    pub kind: Option<String>,
    /// The space's home page, under which top-level pages go. Only from [`by_key`].
    pub homepage_id: Option<PageId>,
    /// The web UI path (relative; see [`Links`]).
    pub webui: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpaceJson {
    #[serde(default, deserialize_with = "loose::id")]
    id: Option<SpaceId>,
    #[serde(default, deserialize_with = "loose::id")]
    key: Option<SpaceKey>,
    #[serde(default, deserialize_with = "loose::id")]
    name: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "loose::id")]
    kind: Option<String>,
    /// Cloud v2.
    #[serde(default, deserialize_with = "loose::id")]
    homepage_id: Option<PageId>,
    /// Server/DC with `expand=homepage`.
    #[serde(default)]
    homepage: Option<Homepage>,
    #[serde(rename = "_links", default)]
    links: Option<Links>,
}

#[derive(Debug, Deserialize)]
struct Homepage {
    #[serde(default, deserialize_with = "loose::id")]
    id: Option<PageId>,
}

impl SpaceJson {
    /// `None` for a space without key (not one we can address).
    fn into_space(mut self, flavour: Flavour) -> Option<Space> {
        let key = self.key.take()?;
        Some(self.keyed(flavour, key))
    }

    fn keyed(self, flavour: Flavour, key: SpaceKey) -> Space {
        Space {
            key,
            id: if flavour == Flavour::Cloud { self.id } else { None },
            name: self.name,
            kind: self.kind,
            homepage_id: match flavour {
                Flavour::Cloud => self.homepage_id,
                Flavour::DataCenter => self.homepage.and_then(|h| h.id),
            },
            webui: self.links.and_then(|l| l.webui),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Results<T> {
    #[serde(default = "Vec::new")]
    results: Vec<T>,
    #[serde(rename = "_links", default)]
    links: Option<Links>,
}

/// A space by key: Cloud `GET /wiki/api/v2/spaces?keys=`, DC `GET /rest/api/space/{key}` (with
/// its home page). `None` when it does not exist (or the connection may not see it).
pub async fn by_key(session: &Session, key: &SpaceKey) -> Result<Option<Space>, AtlassianError> {
    let flavour = session.flavour();
    match flavour {
        Flavour::Cloud => {
            let page: Results<SpaceJson> =
                session.get_json(&session.confluence_v2_path(&format!("spaces?keys={}", encode(key.as_str())))).await?;
            // The space of the key asked for, under that key.
            Ok(page.results.into_iter().next().map(|s| s.keyed(flavour, key.clone())))
        }
        Flavour::DataCenter => {
            let path = session.confluence_v1_path(&format!("space/{}?expand=homepage", encode(key.as_str())));
            match session.get_json::<SpaceJson>(&path).await {
                Ok(s) => Ok(Some(s.keyed(flavour, key.clone()))),
                Err(e) if e.is(Class::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

/// Where a list of spaces continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Cloud: the `cursor` of `_links.next`.
    Cursor(String),
    /// Server/DC: the offset of the next page.
    Start(usize),
}

/// One page of spaces, and where the next starts (`None` on the last page). Entries without a
/// key are left out; the next page's offset counts them.
pub struct SpacePage {
    pub spaces: Vec<Space>,
    pub next: Option<Next>,
}

/// One page of the spaces the connection sees: Cloud from `cursor` (v2 cursor pagination),
/// Server/DC from offset `start`.
pub async fn list(
    session: &Session,
    cursor: Option<&str>,
    start: usize,
    limit: usize,
) -> Result<SpacePage, AtlassianError> {
    let flavour = session.flavour();
    let (results, next) = match flavour {
        Flavour::Cloud => {
            let mut path = session.confluence_v2_path(&format!("spaces?limit={limit}"));
            if let Some(token) = cursor {
                path.push_str(&format!("&cursor={}", encode(token)));
            }
            let page: Results<SpaceJson> = session.get_json(&path).await?;
            let next = page.links.and_then(|l| l.next).as_deref().and_then(cursor_param).map(Next::Cursor);
            (page.results, next)
        }
        Flavour::DataCenter => {
            let page: Results<SpaceJson> =
                session.get_json(&session.confluence_v1_path(&format!("space?start={start}&limit={limit}"))).await?;
            let more = page.links.is_some_and(|l| l.next.is_some()) && !page.results.is_empty();
            let next = more.then(|| Next::Start(start + page.results.len()));
            (page.results, next)
        }
    };
    Ok(SpacePage { spaces: results.into_iter().filter_map(|s| s.into_space(flavour)).collect(), next })
}

/// The `cursor` query parameter of a Confluence Cloud `_links.next` URL.
fn cursor_param(next: &str) -> Option<String> {
    let query = next.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "cursor").map(|(_, v)| v.into_owned())
}

/// One Cloud v2 space read (`spaces?limit=1`): any answer proves the credentials work.
pub async fn probe(session: &Session) -> Result<(), AtlassianError> {
    session.get_json::<IgnoredAny>(&session.confluence_v2_path("spaces?limit=1")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluence_next_links_yield_their_cursor() {
        assert_eq!(cursor_param("/wiki/api/v2/spaces?limit=50&cursor=a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(cursor_param("/wiki/api/v2/spaces?limit=50"), None);
    }
}
