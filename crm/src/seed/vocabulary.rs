//! The demo's words: names, industries, products, and the sentences each
//! topic and tone is written with.

use super::*;

pub(super) const FIRST: &[&str] = &[
    "Dana", "Olga", "Marcus", "Priya", "Sam", "Elena", "Tom", "Aisha", "Lukas", "Mei", "Carlos",
    "Hannah", "Jonas", "Fatima", "Noah", "Ingrid", "Ravi", "Chloe", "Mateo", "Sara", "Kenji",
    "Laura", "Omar", "Zoe", "Felix", "Amara", "Diego", "Nina", "Victor", "Yuki", "Grace", "Pavel",
    "Leila", "Ben", "Ana", "Tariq", "Julia", "Erik", "Nadia", "Owen",
];
pub(super) const LAST: &[&str] = &[
    "Lee",
    "Okafor",
    "Webb",
    "Shah",
    "Carter",
    "Rossi",
    "Becker",
    "Khan",
    "Novak",
    "Chen",
    "Silva",
    "Brooks",
    "Lindqvist",
    "Haddad",
    "Murphy",
    "Berg",
    "Iyer",
    "Dubois",
    "Garcia",
    "Kowalski",
    "Tanaka",
    "Meyer",
    "Farouk",
    "Walsh",
    "Schmidt",
    "Mensah",
    "Ortega",
    "Petrova",
    "Laurent",
    "Sato",
    "Nguyen",
    "Fischer",
    "Romero",
    "Ali",
    "Costa",
    "Jensen",
    "Moreau",
    "Evans",
    "Hughes",
    "Park",
];
pub(super) const NAME_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Northwind",
    "Vandelay",
    "Brightline",
    "Bluepeak",
    "Cobalt",
    "Evergreen",
    "Falcon",
    "Granite",
    "Harbor",
    "Ironwood",
    "Juniper",
    "Keystone",
    "Lakeshore",
    "Meridian",
    "Nimbus",
    "Oakridge",
    "Pinnacle",
    "Quantum",
    "Redwood",
    "Silverline",
    "Summit",
    "Tidewater",
    "Unity",
    "Vertex",
    "Westfield",
    "Yellowstone",
    "Zenith",
    "Atlas",
    "Beacon",
    "Crescent",
    "Delta",
    "Echo",
    "Frontier",
    "Golden Gate",
    "Horizon",
    "Orion",
    "Pioneer",
];
pub(super) const INDUSTRIES: &[(&str, &[&str])] = &[
    (
        "Logistics",
        &["Logistics", "Freight", "Shipping", "Transport"],
    ),
    (
        "Manufacturing",
        &["Manufacturing", "Industries", "Components", "Machining"],
    ),
    ("Healthcare", &["Health", "Medical", "Clinics", "Care"]),
    ("Retail", &["Retail", "Stores", "Outfitters", "Market"]),
    (
        "Financial Services",
        &["Capital", "Financial", "Bank", "Insurance"],
    ),
    ("Software", &["Software", "Systems", "Labs", "Cloud"]),
    ("Energy", &["Energy", "Power", "Renewables", "Utilities"]),
    (
        "Food & Beverage",
        &["Foods", "Beverages", "Kitchens", "Farms"],
    ),
];
pub(super) const PLACES: &[(&str, &str)] = &[
    ("US", "Chicago"),
    ("US", "Austin"),
    ("US", "Boston"),
    ("US", "Denver"),
    ("GB", "London"),
    ("GB", "Manchester"),
    ("DE", "Berlin"),
    ("DE", "Munich"),
    ("FR", "Lyon"),
    ("NL", "Rotterdam"),
    ("SE", "Stockholm"),
    ("CA", "Toronto"),
];
pub(super) const TITLES: &[&str] = &[
    "VP Finance",
    "AP Manager",
    "Controller",
    "CFO",
    "Procurement Lead",
    "IT Director",
    "Head of Operations",
    "Finance Analyst",
    "CISO",
    "Purchasing Manager",
];
pub(super) const PRODUCTS: &[&str] = &[
    "Procurement Suite",
    "AP Automation",
    "Expense Cloud",
    "Pro plan",
    "Enterprise plan",
];
pub const COMPETITORS: &[&str] = &["LedgerLoop", "Paystream", "InvoiceHub", "Spendwise"];
pub const SYSTEMS: &[&str] = &[
    "SAP",
    "NetSuite",
    "Salesforce",
    "Workday",
    "QuickBooks",
    "Microsoft Dynamics",
];
pub const SECURITY: &[&str] = &[
    "the SOC 2 Type II report",
    "SSO with SAML",
    "data residency in the EU",
    "the latest penetration test results",
    "encryption at rest and key management",
];
pub(super) const LEAD_SOURCES: &[&str] =
    &["web", "referral", "event", "outbound", "partner", "webinar"];
pub(super) const LOSS_REASONS: &[&str] = &[
    "Price too high",
    "Chose a competitor",
    "No budget this year",
    "Project cancelled",
];
pub(super) const WIN_REASONS: &[&str] = &[
    "Best integration fit",
    "Strong ROI case",
    "Executive sponsor pushed it through",
];

/// Sentences per topic and tone; `{…}` slots are filled per activity.
pub(super) fn topic_lines(topic: Topic, tone: Tone) -> &'static [&'static str] {
    use Tone::*;
    use Topic::*;
    match (topic, tone) {
        (Pricing, Positive) => &[
            "They think the pricing for {users} users is fair and want the quote for the {product} by {weekday}.",
            "Pricing landed well: the per-seat cost fits their budget and they asked for the annual prepay discount.",
        ],
        (Pricing, Neutral) => &[
            "They asked for a pricing breakdown for {users} users on the {product}, including implementation fees.",
            "Questions on pricing: volume tiers above {invoices} invoices a month and whether the {product} is billed annually.",
        ],
        (Pricing, Negative) => &[
            "They are worried about price: the quote for {users} users is well above what they budgeted and the CFO pushed back.",
            "Pricing is a problem. They said our per-seat price is too expensive compared with {competitor} and asked for a steep discount.",
        ],
        (SecurityReview, Positive) => &[
            "Their security team reviewed {security} and signed off without findings.",
            "The security review went smoothly; the CISO was happy with {security}.",
        ],
        (SecurityReview, Neutral) => &[
            "Security review in progress: they asked for {security} and a completed vendor questionnaire.",
            "Their infosec team needs {security} before the security review can finish.",
        ],
        (SecurityReview, Negative) => &[
            "The security review is stuck: they have concerns about {security} and will not proceed until it is resolved.",
            "Security flagged a blocker around {security}; the CISO is unhappy with how long our answers took.",
        ],
        (Integration, Positive) => &[
            "The {system} integration test worked on the first try and their IT team was impressed.",
            "They loved how quickly invoices synced from {system}; integration risk is off the table.",
        ],
        (Integration, Neutral) => &[
            "They asked how the integration with {system} handles purchase orders and approval workflows.",
            "Integration questions: whether we have a native {system} connector or need the API.",
        ],
        (Integration, Negative) => &[
            "The {system} integration keeps failing on vendor records and their IT team is frustrated.",
            "Integration with {system} is a concern; they worry it will need months of custom work.",
        ],
        (Timeline, Positive) => &[
            "They want to go live before the end of the quarter and the timeline looks achievable.",
            "Timeline is accelerating: the project got approved and they want to start in {weeks} weeks.",
        ],
        (Timeline, Neutral) => &[
            "They plan to decide within {weeks} weeks, after their budget review.",
            "Timeline: evaluation runs until next month, then a decision by the steering committee.",
        ],
        (Timeline, Negative) => &[
            "The timeline slipped again; budget is frozen until next quarter and the decision is on hold.",
            "They pushed the project out by {weeks} weeks because of a reorganisation, which puts the deal at risk.",
        ],
        (Competitor, Positive) => &[
            "They compared us with {competitor} and prefer our approval workflows and reporting.",
            "They dropped {competitor} from the shortlist after our demo.",
        ],
        (Competitor, Neutral) => &[
            "They are also evaluating {competitor} and asked how we differ on invoice matching.",
            "{competitor} is in the running; they want a side-by-side comparison of features.",
        ],
        (Competitor, Negative) => &[
            "{competitor} offered them a big discount and they are leaning towards {competitor}.",
            "They said {competitor} demoed better OCR accuracy and we may lose this to {competitor}.",
        ],
        (Renewal, Positive) => &[
            "They confirmed the renewal for next year and want to add {users} more seats.",
            "Renewal looks safe: usage is up and they plan to expand to another business unit.",
        ],
        (Renewal, Neutral) => &[
            "The renewal is due in {weeks} weeks; they asked for usage numbers before signing.",
            "Renewal discussion: they want to review the contract terms and seat count.",
        ],
        (Renewal, Negative) => &[
            "Renewal at risk: usage dropped and they are considering cancelling at the end of the term.",
            "They said they may not renew unless support response times improve.",
        ],
        (Complaint, Positive) => &[
            "The earlier complaint about duplicate payments was resolved and they thanked support.",
            "They had an issue with invoice exports last month, but support fixed it quickly and they are satisfied.",
        ],
        (Complaint, Neutral) => &[
            "They reported a bug: approval emails arrive late for some users.",
            "They raised a support ticket about exports timing out on large reports.",
        ],
        (Complaint, Negative) => &[
            "They complained that invoices were posted twice and support took four days to respond. They are angry.",
            "Very unhappy: the app was down during their month-end close and nobody called them back.",
        ],
        (Praise, Positive) => &[
            "They praised the product: invoice processing time dropped by half since go-live.",
            "Great feedback: the AP team loves the mobile approvals and wants to be a reference customer.",
        ],
        (Praise, Neutral) => &[
            "They mentioned the dashboard is useful for the monthly review.",
            "They said the new reporting is helpful and asked for a few more filters.",
        ],
        (Praise, Negative) => &[
            "They like the approvals feature but said the rest of the product is disappointing so far.",
            "Some praise for the UI, but overall they are unhappy with the value they get.",
        ],
        (Onboarding, Positive) => &[
            "Onboarding is going well: {users} users trained and the first invoices processed.",
            "The onboarding sessions were excellent and the team is already live.",
        ],
        (Onboarding, Neutral) => &[
            "Onboarding plan: admin training next week, then a rollout to the AP team.",
            "They asked who their onboarding manager is and when training starts.",
        ],
        (Onboarding, Negative) => &[
            "Onboarding has been painful: training was rescheduled twice and users are confused.",
            "They complained that onboarding is slow and the data migration from {system} is behind.",
        ],
        (Contract, Positive) => &[
            "Legal approved the contract redlines and the MSA is ready for signature.",
            "Contract terms are agreed; procurement will send the signed order form this week.",
        ],
        (Contract, Neutral) => &[
            "Their legal team sent redlines on liability caps and the data processing agreement.",
            "Contract review: they need a DPA and want net-60 payment terms.",
        ],
        (Contract, Negative) => &[
            "Legal rejected our liability terms and the contract is stalled.",
            "Procurement is unhappy with the auto-renewal clause and refuses to sign as is.",
        ],
    }
}

pub(super) fn subject(topic: Topic) -> &'static [&'static str] {
    match topic {
        Topic::Pricing => &[
            "Pricing question",
            "Re: Quote for {product}",
            "Budget and pricing",
        ],
        Topic::SecurityReview => &[
            "Security review",
            "Re: {security}",
            "Vendor security questionnaire",
        ],
        Topic::Integration => &["{system} integration", "Re: API and connectors"],
        Topic::Timeline => &["Project timeline", "Re: Next steps and timing"],
        Topic::Competitor => &["Comparison with {competitor}", "Re: Evaluation shortlist"],
        Topic::Renewal => &["Renewal", "Re: Contract renewal"],
        Topic::Complaint => &[
            "Problem with invoices",
            "Support ticket escalation",
            "Re: Outage",
        ],
        Topic::Praise => &["Thank you!", "Feedback on the product"],
        Topic::Onboarding => &["Onboarding schedule", "Re: Training sessions"],
        Topic::Contract => &["Contract redlines", "Re: MSA and order form"],
    }
}

pub(super) const NEXT_STEPS: &[&str] = &[
    "Next step: send a revised quote by {weekday}.",
    "Next step: schedule a call with their CFO.",
    "Follow up next week with the documents they asked for.",
    "Agreed to reconnect after their internal review.",
    "Next step: book a technical deep-dive with IT.",
];

pub(super) const WEEKDAYS: &[&str] = &["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

pub(super) struct Slots<'a> {
    pub(super) contact: &'a str,
    pub(super) company: &'a str,
    pub(super) product: &'a str,
    pub(super) competitor: &'a str,
    pub(super) system: &'a str,
    pub(super) security: &'a str,
    pub(super) users: u32,
    pub(super) invoices: u32,
    pub(super) weeks: u32,
    pub(super) weekday: &'a str,
}

pub(super) fn fill(template: &str, s: &Slots<'_>) -> String {
    template
        .replace("{contact}", s.contact)
        .replace("{company}", s.company)
        .replace("{product}", s.product)
        .replace("{competitor}", s.competitor)
        .replace("{system}", s.system)
        .replace("{security}", s.security)
        .replace("{users}", &s.users.to_string())
        .replace("{invoices}", &s.invoices.to_string())
        .replace("{weeks}", &s.weeks.to_string())
        .replace("{weekday}", s.weekday)
}

#[derive(Clone, Copy)]
pub(super) enum Voice {
    /// The customer writing: "they are worried" → "we are worried".
    First,
    /// The rep writing to the customer: "they are worried" → "you are worried".
    Second,
}

pub(super) fn voice(line: &str, v: Voice) -> String {
    let (they, their, them, are) = match v {
        Voice::First => ("we", "our", "us", "are"),
        Voice::Second => ("you", "your", "you", "are"),
    };
    let mut out = Vec::new();
    for word in line.split(' ') {
        let (core, tail) =
            word.split_at(word.trim_end_matches(|c: char| !c.is_alphanumeric()).len());
        let swapped = match core {
            "They" => cap(they),
            "they" => they.to_owned(),
            "Their" => cap(their),
            "their" => their.to_owned(),
            "them" => them.to_owned(),
            "is" if matches!(
                out.last().map(String::as_str),
                Some("we" | "We" | "you" | "You")
            ) =>
            {
                are.to_owned()
            }
            other => other.to_owned(),
        };
        out.push(format!("{swapped}{tail}"));
    }
    out.join(" ")
}

pub(super) fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub(super) fn slug(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

pub(super) fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    *items.choose(rng).expect("non-empty vocabulary")
}
