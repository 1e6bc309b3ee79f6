//! The few words we write ourselves on a report page and in its PDF, in the tenant's language.
//! The report's `locale` wins over the tenant's settings; English is the default.
//!
//! Each language is written as its speakers write these words in a team's tools (German
//! "Aktionspunkte", Japanese "アクションアイテム"), not word for word from the English.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    #[default]
    En,
    De,
    Fr,
    Es,
    Pt,
    Ja,
}

/// Every label, one field per use.
#[derive(Debug)]
pub struct Labels {
    pub retrospective: &'static str,
    pub health_check: &'static str,
    pub kind: &'static str,
    pub team: &'static str,
    pub date: &'static str,
    pub facilitator: &'static str,
    pub participants: &'static str,
    pub open_in_app: &'static str,
    pub action_items: &'static str,
    pub dimensions: &'static str,
    pub dimension: &'static str,
    pub score: &'static str,
    pub trend: &'static str,
    pub comments: &'static str,
    pub summary: &'static str,
    /// Before the mean score in a health check's summary line: "Mean 6.2 / 10".
    pub mean: &'static str,
    pub top_items: &'static str,
    pub assignee: &'static str,
    pub due: &'static str,
    pub issue: &'static str,
    pub by: &'static str,
    pub group: &'static str,
    pub previous: &'static str,
    pub trend_up: &'static str,
    pub trend_down: &'static str,
    pub trend_flat: &'static str,
    /// Score bands: below 4, 4 to below 7, 7 and above.
    pub band_low: &'static str,
    pub band_mid: &'static str,
    pub band_high: &'static str,
    pub contents: &'static str,
    pub pdf_summary: &'static str,
    /// "page {n} of {total}": `{n}` and `{total}` are replaced.
    pub page_of: &'static str,
    /// "1 vote" / "{n} votes".
    pub vote_one: &'static str,
    pub vote_many: &'static str,
    /// "{n} more": the title of the collapsed rest of a long section or comment list.
    pub more_items: &'static str,
}

const EN: Labels = Labels {
    retrospective: "Retrospective",
    health_check: "Health check",
    kind: "Type",
    team: "Team",
    date: "Date",
    facilitator: "Facilitator",
    participants: "Participants",
    open_in_app: "Open in the app",
    action_items: "Action items",
    dimensions: "Dimensions",
    dimension: "Dimension",
    score: "Score",
    trend: "Trend",
    comments: "Comments",
    summary: "Summary",
    mean: "Mean",
    top_items: "Top items",
    assignee: "Assignee",
    due: "Due",
    issue: "Issue",
    by: "by",
    group: "group",
    previous: "previous",
    trend_up: "up",
    trend_down: "down",
    trend_flat: "flat",
    band_low: "Needs attention",
    band_mid: "Fair",
    band_high: "Good",
    contents: "Contents",
    pdf_summary: "PDF summary",
    page_of: "page {n} of {total}",
    vote_one: "1 vote",
    vote_many: "{n} votes",
    more_items: "{n} more",
};

const DE: Labels = Labels {
    retrospective: "Retrospektive",
    health_check: "Health-Check",
    kind: "Art",
    team: "Team",
    date: "Datum",
    facilitator: "Moderation",
    participants: "Teilnehmende",
    open_in_app: "In der App öffnen",
    action_items: "Aktionspunkte",
    dimensions: "Dimensionen",
    dimension: "Dimension",
    score: "Bewertung",
    trend: "Trend",
    comments: "Kommentare",
    summary: "Zusammenfassung",
    mean: "Durchschnitt",
    top_items: "Top-Themen",
    assignee: "Zuständig",
    due: "Fällig",
    issue: "Vorgang",
    by: "von",
    group: "Gruppe",
    previous: "vorher",
    trend_up: "steigend",
    trend_down: "fallend",
    trend_flat: "gleichbleibend",
    band_low: "Handlungsbedarf",
    band_mid: "Mittel",
    band_high: "Gut",
    contents: "Inhalt",
    pdf_summary: "PDF-Zusammenfassung",
    page_of: "Seite {n} von {total}",
    vote_one: "1 Stimme",
    vote_many: "{n} Stimmen",
    more_items: "{n} weitere",
};

const FR: Labels = Labels {
    retrospective: "Rétrospective",
    health_check: "Bilan de santé d’équipe",
    kind: "Type",
    team: "Équipe",
    date: "Date",
    facilitator: "Animation",
    participants: "Participants",
    open_in_app: "Ouvrir dans l’application",
    action_items: "Actions à mener",
    dimensions: "Dimensions",
    dimension: "Dimension",
    score: "Note",
    trend: "Tendance",
    comments: "Commentaires",
    summary: "Synthèse",
    mean: "Moyenne",
    top_items: "Points les plus votés",
    assignee: "Responsable",
    due: "Échéance",
    issue: "Ticket",
    by: "par",
    group: "groupe",
    previous: "précédent",
    trend_up: "en hausse",
    trend_down: "en baisse",
    trend_flat: "stable",
    band_low: "À améliorer",
    band_mid: "Correct",
    band_high: "Bon",
    contents: "Sommaire",
    pdf_summary: "Synthèse PDF",
    page_of: "page {n} sur {total}",
    vote_one: "1 vote",
    vote_many: "{n} votes",
    more_items: "{n} de plus",
};

const ES: Labels = Labels {
    retrospective: "Retrospectiva",
    health_check: "Chequeo de salud del equipo",
    kind: "Tipo",
    team: "Equipo",
    date: "Fecha",
    facilitator: "Facilitación",
    participants: "Participantes",
    open_in_app: "Abrir en la aplicación",
    action_items: "Acciones acordadas",
    dimensions: "Dimensiones",
    dimension: "Dimensión",
    score: "Puntuación",
    trend: "Tendencia",
    comments: "Comentarios",
    summary: "Resumen",
    mean: "Media",
    top_items: "Lo más votado",
    assignee: "Responsable",
    due: "Vence",
    issue: "Incidencia",
    by: "por",
    group: "grupo",
    previous: "anterior",
    trend_up: "al alza",
    trend_down: "a la baja",
    trend_flat: "estable",
    band_low: "Requiere atención",
    band_mid: "Aceptable",
    band_high: "Bien",
    contents: "Contenido",
    pdf_summary: "Resumen en PDF",
    page_of: "página {n} de {total}",
    vote_one: "1 voto",
    vote_many: "{n} votos",
    more_items: "{n} más",
};

const PT: Labels = Labels {
    retrospective: "Retrospectiva",
    health_check: "Avaliação de saúde da equipe",
    kind: "Tipo",
    team: "Equipe",
    date: "Data",
    facilitator: "Facilitação",
    participants: "Participantes",
    open_in_app: "Abrir no aplicativo",
    action_items: "Itens de ação",
    dimensions: "Dimensões",
    dimension: "Dimensão",
    score: "Nota",
    trend: "Tendência",
    comments: "Comentários",
    summary: "Resumo",
    mean: "Média",
    top_items: "Mais votados",
    assignee: "Responsável",
    due: "Prazo",
    issue: "Item",
    by: "por",
    group: "grupo",
    previous: "anterior",
    trend_up: "em alta",
    trend_down: "em queda",
    trend_flat: "estável",
    band_low: "Precisa de atenção",
    band_mid: "Razoável",
    band_high: "Bom",
    contents: "Sumário",
    pdf_summary: "Resumo em PDF",
    page_of: "página {n} de {total}",
    vote_one: "1 voto",
    vote_many: "{n} votos",
    more_items: "mais {n}",
};

const JA: Labels = Labels {
    retrospective: "振り返り",
    health_check: "ヘルスチェック",
    kind: "種類",
    team: "チーム",
    date: "日付",
    facilitator: "ファシリテーター",
    participants: "参加者",
    open_in_app: "アプリで開く",
    action_items: "アクションアイテム",
    dimensions: "評価項目",
    dimension: "項目",
    score: "スコア",
    trend: "傾向",
    comments: "コメント",
    summary: "概要",
    mean: "平均",
    top_items: "投票の多い項目",
    assignee: "担当者",
    due: "期限",
    issue: "課題",
    by: "投稿者",
    group: "グループ",
    previous: "前回",
    trend_up: "上昇",
    trend_down: "下降",
    trend_flat: "横ばい",
    band_low: "要改善",
    band_mid: "普通",
    band_high: "良好",
    contents: "目次",
    pdf_summary: "PDF サマリー",
    page_of: "{n} / {total} ページ",
    vote_one: "1 票",
    vote_many: "{n} 票",
    more_items: "他 {n} 件",
};

const EN_MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

impl Locale {
    pub const ALL: [Locale; 6] = [Locale::En, Locale::De, Locale::Fr, Locale::Es, Locale::Pt, Locale::Ja];

    pub fn labels(self) -> &'static Labels {
        match self {
            Locale::En => &EN,
            Locale::De => &DE,
            Locale::Fr => &FR,
            Locale::Es => &ES,
            Locale::Pt => &PT,
            Locale::Ja => &JA,
        }
    }

    /// The BCP 47 tag (for a document's language).
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::De => "de",
            Locale::Fr => "fr",
            Locale::Es => "es",
            Locale::Pt => "pt",
            Locale::Ja => "ja",
        }
    }

    /// `YYYY-MM-DD` as people of this locale write dates ("20 Nov 2026", "20.11.2026",
    /// "20/11/2026", "2026年11月20日"); anything that is not a real date is returned as it is.
    pub fn date(self, iso: &str) -> String {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let Ok(date) = time::Date::parse(iso, &format) else {
            return iso.to_owned();
        };
        let (y, m, d) = (date.year(), u8::from(date.month()), date.day());
        match self {
            Locale::En => format!("{d} {} {y}", EN_MONTHS[usize::from(m - 1)]),
            Locale::De => format!("{d:02}.{m:02}.{y}"),
            Locale::Fr | Locale::Es | Locale::Pt => format!("{d:02}/{m:02}/{y}"),
            Locale::Ja => format!("{y}年{m}月{d}日"),
        }
    }

    /// A score with one decimal, with this locale's decimal separator ("7.5", "7,5").
    pub fn decimal(self, value: f32) -> String {
        let text = format!("{value:.1}");
        match self {
            Locale::En | Locale::Ja => text,
            Locale::De | Locale::Fr | Locale::Es | Locale::Pt => text.replace('.', ","),
        }
    }
}

impl Labels {
    pub fn votes(&self, n: u32) -> String {
        if n == 1 { self.vote_one.to_owned() } else { self.vote_many.replace("{n}", &n.to_string()) }
    }

    pub fn page_of(&self, n: usize, total: usize) -> String {
        self.page_of.replace("{n}", &n.to_string()).replace("{total}", &total.to_string())
    }

    pub fn more_items(&self, n: usize) -> String {
        self.more_items.replace("{n}", &n.to_string())
    }

    /// The band's name: below 4 low, 4 to below 7 mid, 7 and above high.
    pub fn band(&self, band: Band) -> &'static str {
        match band {
            Band::Low => self.band_low,
            Band::Mid => self.band_mid,
            Band::High => self.band_high,
        }
    }
}

/// A health-check score's band: below 4, 4 to below 7, 7 and above (0 to 10 scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Low,
    Mid,
    High,
}

impl Band {
    pub fn of(score: f32) -> Band {
        if score < 4.0 {
            Band::Low
        } else if score < 7.0 {
            Band::Mid
        } else {
            Band::High
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every label of a locale, in field order (a new field must be added here too).
    fn all(l: &Labels) -> Vec<&'static str> {
        vec![
            l.retrospective,
            l.health_check,
            l.kind,
            l.team,
            l.date,
            l.facilitator,
            l.participants,
            l.open_in_app,
            l.action_items,
            l.dimensions,
            l.dimension,
            l.score,
            l.trend,
            l.comments,
            l.summary,
            l.mean,
            l.top_items,
            l.assignee,
            l.due,
            l.issue,
            l.by,
            l.group,
            l.previous,
            l.trend_up,
            l.trend_down,
            l.trend_flat,
            l.band_low,
            l.band_mid,
            l.band_high,
            l.contents,
            l.pdf_summary,
            l.page_of,
            l.vote_one,
            l.vote_many,
            l.more_items,
        ]
    }

    #[test]
    fn every_locale_fills_every_label_and_keeps_the_placeholders() {
        for locale in Locale::ALL {
            let l = locale.labels();
            for (i, text) in all(l).into_iter().enumerate() {
                assert!(!text.trim().is_empty(), "{locale:?} label {i} is empty");
            }
            assert!(l.page_of.contains("{n}") && l.page_of.contains("{total}"), "{locale:?}");
            assert!(l.vote_many.contains("{n}") && l.more_items.contains("{n}"), "{locale:?}");
            assert!(!l.vote_one.contains("{n}"), "{locale:?}");
        }
        // Not English left in by mistake: each language differs from English where the words do.
        for locale in [Locale::De, Locale::Fr, Locale::Es, Locale::Pt, Locale::Ja] {
            let l = locale.labels();
            assert_ne!(l.action_items, EN.action_items, "{locale:?}");
            assert_ne!(l.open_in_app, EN.open_in_app, "{locale:?}");
            assert_ne!(l.summary, EN.summary, "{locale:?}");
        }
        assert_eq!(DE.action_items, "Aktionspunkte");
        assert_eq!(JA.action_items, "アクションアイテム");
    }

    #[test]
    fn dates_are_written_the_way_each_locale_writes_them() {
        let cases = [
            (Locale::En, "20 Nov 2026"),
            (Locale::De, "20.11.2026"),
            (Locale::Fr, "20/11/2026"),
            (Locale::Es, "20/11/2026"),
            (Locale::Pt, "20/11/2026"),
            (Locale::Ja, "2026年11月20日"),
        ];
        for (locale, want) in cases {
            assert_eq!(locale.date("2026-11-20"), want, "{locale:?}");
        }
        assert_eq!(Locale::De.date("2026-01-05"), "05.01.2026");
        assert_eq!(Locale::En.date("2026-01-05"), "5 Jan 2026");
        assert_eq!(Locale::Ja.date("2026-01-05"), "2026年1月5日");
        // Not a date: kept as it is, never a panic.
        for bad in ["", "2026-13-01", "2026-02-30", "yesterday", "2026-1-5", "２０２６-11-20"] {
            assert_eq!(Locale::De.date(bad), bad);
        }
    }

    #[test]
    fn decimals_use_the_locale_separator_and_bands_split_at_4_and_7() {
        assert_eq!(Locale::En.decimal(7.5), "7.5");
        assert_eq!(Locale::De.decimal(7.5), "7,5");
        assert_eq!(Locale::Ja.decimal(4.0), "4.0");
        assert_eq!(Band::of(3.99), Band::Low);
        assert_eq!(Band::of(4.0), Band::Mid);
        assert_eq!(Band::of(6.99), Band::Mid);
        assert_eq!(Band::of(7.0), Band::High);
        assert_eq!(Band::of(10.0), Band::High);
        assert_eq!(Locale::De.labels().band(Band::Low), "Handlungsbedarf");
    }

    #[test]
    fn locales_parse_from_their_lower_case_codes() {
        for locale in Locale::ALL {
            let parsed: Locale = serde_json::from_value(serde_json::json!(locale.tag())).unwrap();
            assert_eq!(parsed, locale);
        }
        assert!(serde_json::from_value::<Locale>(serde_json::json!("DE")).is_err());
        assert!(serde_json::from_value::<Locale>(serde_json::json!("it")).is_err());
    }
}
