//! The demo CRM: a realistic, deterministic book of business for a company that
//! sells accounts-payable and procurement software. Generation is pure (same
//! seed and date, same data) and separate from writing, so evaluations can
//! regenerate the ground truth — which topic and tone each activity was written
//! with — without reading it back from the database.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use indicatif::ProgressBar;
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::model::{Ctx, Id, Pipeline, Stage};
use crate::schema::{RecordType, format_timestamp};
use crate::store::{NewStageChange, Store};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SeedParams {
    pub companies: usize,
    pub seed: u64,
    /// "Today" for the data: activities lie before it, tasks around it.
    pub as_of: DateTime<Utc>,
}

impl SeedParams {
    pub fn new(companies: usize, seed: u64) -> Self {
        let today = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        SeedParams {
            companies,
            seed,
            as_of: today,
        }
    }
}

/// What the interaction is about; the ground truth for retrieval evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    Pricing,
    SecurityReview,
    Integration,
    Timeline,
    Competitor,
    Renewal,
    Complaint,
    Praise,
    Onboarding,
    Contract,
}

pub const TOPICS: [Topic; 10] = [
    Topic::Pricing,
    Topic::SecurityReview,
    Topic::Integration,
    Topic::Timeline,
    Topic::Competitor,
    Topic::Renewal,
    Topic::Complaint,
    Topic::Praise,
    Topic::Onboarding,
    Topic::Contract,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Positive,
    Neutral,
    Negative,
}

#[derive(Debug, Clone)]
pub struct UserSpec {
    pub name: String,
    pub email: String,
    pub role: &'static str,
}

#[derive(Debug, Clone)]
pub struct CompanySpec {
    pub name: String,
    pub domain: String,
    pub industry: &'static str,
    pub employees: i64,
    pub country: &'static str,
    pub city: &'static str,
    pub owner: usize,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ContactSpec {
    pub company: usize,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub title: &'static str,
    pub phone: String,
}

#[derive(Debug, Clone)]
pub struct LeadSpec {
    pub name: String,
    pub email: String,
    pub company_name: String,
    pub title: &'static str,
    pub source: &'static str,
    pub status: &'static str,
    pub owner: usize,
    pub company: Option<usize>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct DealSpec {
    pub company: usize,
    pub name: String,
    pub value: f64,
    /// Index into the default pipeline's stages; the path walked to get there.
    pub stage_path: Vec<usize>,
    pub stage_times: Vec<DateTime<Utc>>,
    pub expected_close: NaiveDate,
    pub owner: usize,
    pub contacts: Vec<usize>,
    pub close_reason: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct ActivitySpec {
    pub kind: &'static str,
    pub direction: &'static str,
    pub subject: Option<String>,
    pub body: String,
    pub occurred_at: DateTime<Utc>,
    pub duration_seconds: Option<i64>,
    pub company: usize,
    pub contact: Option<usize>,
    pub deal: Option<usize>,
    pub owner: usize,
    pub topic: Topic,
    pub tone: Tone,
}

#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub title: String,
    pub due_at: DateTime<Utc>,
    pub priority: &'static str,
    pub status: &'static str,
    pub assignee: usize,
    pub company: usize,
    pub contact: Option<usize>,
    pub deal: Option<usize>,
}

/// A generated CRM, records referring to each other by index.
#[derive(Debug, Clone, Default)]
pub struct DemoData {
    pub users: Vec<UserSpec>,
    pub companies: Vec<CompanySpec>,
    pub contacts: Vec<ContactSpec>,
    pub leads: Vec<LeadSpec>,
    pub deals: Vec<DealSpec>,
    pub activities: Vec<ActivitySpec>,
    pub tasks: Vec<TaskSpec>,
}

impl DemoData {
    pub fn len(&self) -> usize {
        self.users.len()
            + self.companies.len()
            + self.contacts.len()
            + self.leads.len()
            + self.deals.len()
            + self.activities.len()
            + self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ids the written records received, by the index they had in [`DemoData`].
#[derive(Debug, Clone, Default)]
pub struct SeededIds {
    pub users: Vec<Id>,
    pub companies: Vec<Id>,
    pub contacts: Vec<Id>,
    pub leads: Vec<Id>,
    pub deals: Vec<Id>,
    pub activities: Vec<Id>,
    pub tasks: Vec<Id>,
}

/// The default sales pipeline: (name, win probability, outcome).
pub const DEFAULT_STAGES: [(&str, f64, &str); 6] = [
    ("Qualification", 0.1, "open"),
    ("Discovery", 0.2, "open"),
    ("Proposal", 0.4, "open"),
    ("Negotiation", 0.6, "open"),
    ("Closed Won", 1.0, "won"),
    ("Closed Lost", 0.0, "lost"),
];

/// Creates the default pipeline "Sales" with its stages.
pub async fn create_default_pipeline(store: &Store, ctx: &Ctx) -> Result<Pipeline> {
    let mut tx = store.begin().await?;
    let pipeline: Pipeline = tx
        .create(ctx, json!({"name": "Sales", "is_default": true}))
        .await?;
    for (position, (name, probability, outcome)) in DEFAULT_STAGES.iter().enumerate() {
        tx.create::<Stage>(
            ctx,
            json!({"pipeline_id": pipeline.id, "name": name, "position": position, "probability": probability, "outcome": outcome}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(pipeline)
}

// ---------------------------------------------------------------- vocabulary

const FIRST: &[&str] = &[
    "Dana", "Olga", "Marcus", "Priya", "Sam", "Elena", "Tom", "Aisha", "Lukas", "Mei", "Carlos",
    "Hannah", "Jonas", "Fatima", "Noah", "Ingrid", "Ravi", "Chloe", "Mateo", "Sara", "Kenji",
    "Laura", "Omar", "Zoe", "Felix", "Amara", "Diego", "Nina", "Victor", "Yuki", "Grace", "Pavel",
    "Leila", "Ben", "Ana", "Tariq", "Julia", "Erik", "Nadia", "Owen",
];
const LAST: &[&str] = &[
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
const NAME_A: &[&str] = &[
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
const INDUSTRIES: &[(&str, &[&str])] = &[
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
const PLACES: &[(&str, &str)] = &[
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
const TITLES: &[&str] = &[
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
const PRODUCTS: &[&str] = &[
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
const LEAD_SOURCES: &[&str] = &["web", "referral", "event", "outbound", "partner", "webinar"];
const LOSS_REASONS: &[&str] = &[
    "Price too high",
    "Chose a competitor",
    "No budget this year",
    "Project cancelled",
];
const WIN_REASONS: &[&str] = &[
    "Best integration fit",
    "Strong ROI case",
    "Executive sponsor pushed it through",
];

/// Sentences per topic and tone; `{…}` slots are filled per activity.
fn topic_lines(topic: Topic, tone: Tone) -> &'static [&'static str] {
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

fn subject(topic: Topic) -> &'static [&'static str] {
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

const NEXT_STEPS: &[&str] = &[
    "Next step: send a revised quote by {weekday}.",
    "Next step: schedule a call with their CFO.",
    "Follow up next week with the documents they asked for.",
    "Agreed to reconnect after their internal review.",
    "Next step: book a technical deep-dive with IT.",
];

const WEEKDAYS: &[&str] = &["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

struct Slots<'a> {
    contact: &'a str,
    company: &'a str,
    product: &'a str,
    competitor: &'a str,
    system: &'a str,
    security: &'a str,
    users: u32,
    invoices: u32,
    weeks: u32,
    weekday: &'a str,
}

fn fill(template: &str, s: &Slots<'_>) -> String {
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
enum Voice {
    /// The customer writing: "they are worried" → "we are worried".
    First,
    /// The rep writing to the customer: "they are worried" → "you are worried".
    Second,
}

fn voice(line: &str, v: Voice) -> String {
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

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn slug(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    *items.choose(rng).expect("non-empty vocabulary")
}

// ---------------------------------------------------------------- generation

/// Generates the demo CRM. Same parameters, same data.
pub fn generate(p: &SeedParams) -> DemoData {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut d = DemoData::default();
    gen_users(&mut d, p.companies);
    let reps: Vec<usize> = (0..d.users.len())
        .filter(|&i| d.users[i].role == "rep")
        .collect();
    for c in 0..p.companies {
        gen_company(&mut d, &mut rng, p, c, &reps);
    }
    gen_leads(&mut d, &mut rng, p, &reps);
    d
}

fn gen_users(d: &mut DemoData, companies: usize) {
    let fixed = [
        ("Alex Morgan", "admin"),
        ("Priya Shah", "manager"),
        ("Dana Ruiz", "rep"),
        ("Marcus Webb", "rep"),
        ("Sofia Lindqvist", "rep"),
        ("Tom Becker", "rep"),
        ("Jordan Ellis", "viewer"),
    ];
    for (name, role) in fixed {
        d.users.push(UserSpec {
            email: format!(
                "{}@rapport.example",
                name.split(' ').next().unwrap_or(name).to_lowercase()
            ),
            name: name.into(),
            role,
        });
    }
    // About one rep per 25 accounts beyond the first hundred.
    let extra = (companies / 25).saturating_sub(4);
    for i in 0..extra {
        let first = FIRST[(i * 7 + 3) % FIRST.len()];
        let last = LAST[(i * 11 + 5) % LAST.len()];
        d.users.push(UserSpec {
            name: format!("{first} {last}"),
            email: format!(
                "{}.{}{}@rapport.example",
                first.to_lowercase(),
                last.to_lowercase(),
                i
            ),
            role: "rep",
        });
    }
}

fn company_name(c: usize) -> (String, usize) {
    let industry = (c / NAME_A.len() + c) % INDUSTRIES.len();
    let a = NAME_A[c % NAME_A.len()];
    let suffixes = INDUSTRIES[industry].1;
    let round = c / (NAME_A.len() * INDUSTRIES.len());
    let b = suffixes[round % suffixes.len()];
    let generation = round / suffixes.len();
    let name = if generation == 0 {
        format!("{a} {b}")
    } else {
        format!("{a} {b} {}", generation + 1)
    };
    (name, industry)
}

fn gen_company(d: &mut DemoData, rng: &mut ChaCha8Rng, p: &SeedParams, c: usize, reps: &[usize]) {
    let (name, industry) = company_name(c);
    let (country, city) = pick(rng, PLACES);
    let owner = reps[c % reps.len()];
    let age_days = rng.random_range(60..720);
    let created_at = p.as_of - Duration::days(age_days);
    let domain = format!(
        "{}.{}",
        slug(&name),
        if country == "US" { "com" } else { "io" }
    );
    let company = d.companies.len();
    d.companies.push(CompanySpec {
        name: name.clone(),
        domain: domain.clone(),
        industry: INDUSTRIES[industry].0,
        employees: pick(rng, &[40, 120, 350, 800, 2500, 9000]),
        country,
        city,
        owner,
        created_at,
    });

    // Contacts: the first account carries the people of the README's examples.
    let first_contact = d.contacts.len();
    let n_contacts = rng.random_range(2..=6);
    for k in 0..n_contacts {
        let (first, last) = if c == 0 && k < 2 {
            (["Dana", "Olga"][k], ["Lee", "Okafor"][k])
        } else {
            (pick(rng, FIRST), pick(rng, LAST))
        };
        let mut email = format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase());
        if d.contacts[first_contact..].iter().any(|x| x.email == email) {
            email = format!(
                "{}.{}{k}@{domain}",
                first.to_lowercase(),
                last.to_lowercase()
            );
        }
        d.contacts.push(ContactSpec {
            company,
            first_name: first.into(),
            last_name: last.into(),
            email,
            title: if c == 0 && k < 2 {
                ["VP Finance", "AP Manager"][k]
            } else {
                pick(rng, TITLES)
            },
            phone: format!("+1-555-{:04}", rng.random_range(0..10_000)),
        });
    }
    let contacts: Vec<usize> = (first_contact..d.contacts.len()).collect();

    // Deals: most accounts have one or two.
    let n_deals = pick(rng, &[0, 1, 1, 1, 2, 2, 3]);
    let first_deal = d.deals.len();
    for k in 0..n_deals {
        gen_deal(d, rng, p, company, k, &contacts, owner);
    }
    let deals: Vec<usize> = (first_deal..d.deals.len()).collect();

    // Activities: a history of interactions, denser for accounts with deals.
    let n_acts = rng.random_range(18..34) + 4 * deals.len();
    let mood = rng.random_range(0.0..1.0f64); // account health: shifts tone
    for _ in 0..n_acts {
        gen_activity(d, rng, p, company, &contacts, &deals, owner, mood, age_days);
    }

    // Tasks: follow-ups, some overdue, some done.
    for _ in 0..rng.random_range(1..5) {
        let offset = rng.random_range(-10..21);
        let status = if offset < -3 && rng.random_bool(0.5) {
            "done"
        } else {
            "open"
        };
        let contact = pick(rng, &contacts);
        d.tasks.push(TaskSpec {
            title: fill(
                pick(
                    rng,
                    &[
                        "Follow up with {contact} on the quote",
                        "Send {security} to {contact}",
                        "Call {contact} about the {system} integration",
                        "Prepare renewal proposal for {company}",
                        "Book onboarding kickoff with {contact}",
                    ],
                ),
                &Slots {
                    contact: &format!(
                        "{} {}",
                        d.contacts[contact].first_name, d.contacts[contact].last_name
                    ),
                    company: &name,
                    product: pick(rng, PRODUCTS),
                    competitor: pick(rng, COMPETITORS),
                    system: pick(rng, SYSTEMS),
                    security: pick(rng, SECURITY),
                    users: 0,
                    invoices: 0,
                    weeks: 0,
                    weekday: "",
                },
            ),
            due_at: p.as_of + Duration::days(offset) + Duration::hours(17),
            priority: pick(rng, &["low", "normal", "normal", "high", "urgent"]),
            status,
            assignee: owner,
            company,
            contact: Some(contact),
            deal: deals.first().copied().filter(|_| rng.random_bool(0.5)),
        });
    }
}

fn gen_deal(
    d: &mut DemoData,
    rng: &mut ChaCha8Rng,
    p: &SeedParams,
    company: usize,
    k: usize,
    contacts: &[usize],
    owner: usize,
) {
    let product = pick(rng, PRODUCTS);
    let name = if k == 0 {
        format!("{} – {product}", d.companies[company].name)
    } else {
        format!(
            "{} – {product} expansion {}",
            d.companies[company].name,
            k + 1
        )
    };
    // Walk the open stages; some deals close.
    let reached = rng.random_range(0..4usize);
    let mut path: Vec<usize> = (0..=reached).collect();
    let close = rng.random_range(0.0..1.0f64);
    let close_reason = if close < 0.15 {
        path.push(4);
        Some(pick(rng, WIN_REASONS))
    } else if close < 0.27 {
        path.push(5);
        Some(pick(rng, LOSS_REASONS))
    } else {
        None
    };
    let mut t = p.as_of - Duration::days(rng.random_range(20..240));
    let mut times = Vec::new();
    for _ in &path {
        times.push(t);
        t += Duration::days(rng.random_range(3..45));
        if t > p.as_of {
            t = p.as_of - Duration::hours(rng.random_range(1..48));
        }
    }
    let mut deal_contacts: Vec<usize> = contacts
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.5))
        .collect();
    if deal_contacts.is_empty() {
        deal_contacts.push(contacts[0]);
    }
    d.deals.push(DealSpec {
        company,
        name,
        value: (rng.random_range(5..250) * 1000) as f64,
        stage_path: path,
        stage_times: times,
        expected_close: (p.as_of + Duration::days(rng.random_range(-30..120))).date_naive(),
        owner,
        contacts: deal_contacts,
        close_reason,
    });
}

#[allow(clippy::too_many_arguments)]
fn gen_activity(
    d: &mut DemoData,
    rng: &mut ChaCha8Rng,
    p: &SeedParams,
    company: usize,
    contacts: &[usize],
    deals: &[usize],
    owner: usize,
    mood: f64,
    age_days: i64,
) {
    let topic = pick(rng, &TOPICS);
    let r = rng.random_range(0.0..1.0f64);
    let tone = match topic {
        Topic::Complaint if r < 0.6 => Tone::Negative,
        Topic::Praise if r < 0.6 => Tone::Positive,
        _ if r < 0.2 + 0.4 * (1.0 - mood) => Tone::Negative,
        _ if r < 0.55 + 0.3 * mood => Tone::Positive,
        _ => Tone::Neutral,
    };
    let kind = pick(rng, &["email", "email", "call", "call", "meeting", "note"]);
    let contact = pick(rng, contacts);
    let cs = &d.contacts[contact];
    let contact_name = format!("{} {}", cs.first_name, cs.last_name);
    let rep_first = d.users[owner]
        .name
        .split(' ')
        .next()
        .unwrap_or("")
        .to_owned();
    let slots = Slots {
        contact: &contact_name,
        company: &d.companies[company].name,
        product: pick(rng, PRODUCTS),
        competitor: pick(rng, COMPETITORS),
        system: pick(rng, SYSTEMS),
        security: pick(rng, SECURITY),
        users: rng.random_range(2..60) * 10,
        invoices: rng.random_range(5..200) * 100,
        weeks: rng.random_range(2..12),
        weekday: pick(rng, WEEKDAYS),
    };
    let line = fill(pick(rng, topic_lines(topic, tone)), &slots);
    let next = fill(pick(rng, NEXT_STEPS), &slots);
    let direction = match kind {
        "note" => "internal",
        "email" | "call" if rng.random_bool(0.45) => "inbound",
        _ => "outbound",
    };
    let (subject, body, duration) = match kind {
        "email" => {
            let subj = fill(pick(rng, subject(topic)), &slots);
            let (from, to, sig) = if direction == "inbound" {
                (
                    cs.first_name.clone(),
                    rep_first.clone(),
                    format!("{contact_name}\n{}, {}", cs.title, slots.company),
                )
            } else {
                (
                    rep_first.clone(),
                    cs.first_name.clone(),
                    format!("{}\nRapport Sales", d.users[owner].name),
                )
            };
            // Notes speak of the customer as "they"; an email is written by
            // one side to the other.
            let (line, next) = if direction == "inbound" {
                (voice(&line, Voice::First), voice(&next, Voice::First))
            } else {
                (
                    format!(
                        "Following up on our conversation: {}",
                        voice(&line, Voice::Second)
                    ),
                    next.clone(),
                )
            };
            let mut body = format!("Hi {to},\n\n{line}\n\n{next}\n\nBest,\n{sig}");
            if rng.random_bool(0.3) {
                body.push_str(&format!(
                    "\n\nOn {}, {from} wrote:\n> Thanks for the call last week.\n> Let me know if you need anything else.",
                    slots.weekday
                ));
            }
            let _ = from;
            (Some(subj), body, None)
        }
        "call" => (
            Some(format!("Call with {contact_name}")),
            format!(
                "Call note: spoke with {contact_name}, {} at {}. {line} {next}",
                cs.title, slots.company
            ),
            Some(rng.random_range(5..60) * 60),
        ),
        "meeting" => (
            Some(format!("Meeting: {} and {}", slots.company, "Rapport")),
            format!("Meeting notes with {contact_name} and team. {line} {next}"),
            Some(rng.random_range(2..8) * 900),
        ),
        _ => (None, format!("Note on {}: {line}", slots.company), None),
    };
    // Interactions cluster in recent weeks, as in a live account.
    let u: f64 = rng.random_range(0.0..1.0);
    let minutes = 30 + (u * u * (age_days.max(2) * 24 * 60) as f64) as i64;
    let occurred_at = p.as_of - Duration::minutes(minutes);
    d.activities.push(ActivitySpec {
        kind,
        direction,
        subject,
        body,
        occurred_at,
        duration_seconds: duration,
        company,
        contact: Some(contact),
        deal: if deals.is_empty() || rng.random_bool(0.4) {
            None
        } else {
            Some(pick(rng, deals))
        },
        owner,
        topic,
        tone,
    });
}

fn gen_leads(d: &mut DemoData, rng: &mut ChaCha8Rng, p: &SeedParams, reps: &[usize]) {
    let n = d.companies.len() * 3 / 2;
    for i in 0..n {
        let first = pick(rng, FIRST);
        let last = pick(rng, LAST);
        let org = format!(
            "{} {}",
            pick(rng, NAME_A),
            pick(rng, &["Partners", "Group", "Holdings", "Co", "Ventures"])
        );
        let status = pick(
            rng,
            &[
                "new",
                "new",
                "working",
                "working",
                "qualified",
                "unqualified",
                "converted",
            ],
        );
        d.leads.push(LeadSpec {
            name: format!("{first} {last}"),
            email: format!(
                "{}.{}{i}@{}.com",
                first.to_lowercase(),
                last.to_lowercase(),
                slug(&org)
            ),
            company_name: org,
            title: pick(rng, TITLES),
            source: pick(rng, LEAD_SOURCES),
            status,
            owner: reps[i % reps.len()],
            company: None,
            created_at: p.as_of - Duration::days(rng.random_range(1..120)),
        });
    }
}

// ---------------------------------------------------------------- writing

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn ts(t: DateTime<Utc>) -> Value {
    Value::String(format_timestamp(&t))
}

/// Writes generated data into a workspace in one transaction: all or nothing.
/// Creates the default pipeline if the workspace has none.
pub async fn write(
    store: &Store,
    ctx: &Ctx,
    data: &DemoData,
    progress: &ProgressBar,
) -> Result<SeededIds> {
    let pipeline = match store
        .list::<Pipeline>(ctx, &crate::ListQuery::default().limit(1))
        .await?
        .items
        .pop()
    {
        Some(p) => p,
        None => create_default_pipeline(store, ctx).await?,
    };
    let stages = store
        .list::<Stage>(
            ctx,
            &crate::ListQuery::filtered(crate::Filter::eq("pipeline_id", pipeline.id))
                .sorted("position", crate::filter::Direction::Asc),
        )
        .await?
        .items;
    progress.set_length(data.len() as u64);
    let mut tx = store.begin().await?;
    let mut ids = SeededIds::default();
    let chunked = |n: usize| n.div_ceil(2000).max(1);

    let rows = data
        .users
        .iter()
        .map(|u| obj(json!({"name": u.name, "email": u.email, "role": u.role, "timezone": "America/Chicago"})))
        .collect();
    ids.users = tx.bulk_insert(ctx, RecordType::User, rows).await?;
    progress.inc(data.users.len() as u64);

    for part in data.companies.chunks(
        data.companies
            .len()
            .div_ceil(chunked(data.companies.len()))
            .max(1),
    ) {
        let rows = part
            .iter()
            .map(|c| {
                obj(json!({"name": c.name, "domain": c.domain, "industry": c.industry, "employees": c.employees,
                    "country": c.country, "city": c.city, "owner_id": ids.users[c.owner],
                    "created_at": ts(c.created_at), "updated_at": ts(c.created_at)}))
            })
            .collect();
        ids.companies
            .extend(tx.bulk_insert(ctx, RecordType::Company, rows).await?);
        progress.inc(part.len() as u64);
    }

    for part in data.contacts.chunks(2000) {
        let rows = part
            .iter()
            .map(|c| {
                obj(json!({"first_name": c.first_name, "last_name": c.last_name, "email": c.email, "title": c.title,
                    "phone": c.phone, "company_id": ids.companies[c.company], "owner_id": ids.users[data.companies[c.company].owner]}))
            })
            .collect();
        ids.contacts
            .extend(tx.bulk_insert(ctx, RecordType::Contact, rows).await?);
        progress.inc(part.len() as u64);
    }

    for part in data.leads.chunks(2000) {
        let rows = part
            .iter()
            .map(|l| {
                obj(json!({"name": l.name, "email": l.email, "company_name": l.company_name, "title": l.title,
                    "source": l.source, "status": l.status, "owner_id": ids.users[l.owner],
                    "company_id": l.company.map(|c| ids.companies[c]),
                    "converted_at": (l.status == "converted").then(|| ts(l.created_at + Duration::days(10))),
                    "created_at": ts(l.created_at), "updated_at": ts(l.created_at)}))
            })
            .collect();
        ids.leads
            .extend(tx.bulk_insert(ctx, RecordType::Lead, rows).await?);
        progress.inc(part.len() as u64);
    }

    for part in data.deals.chunks(2000) {
        let rows = part
            .iter()
            .map(|dl| {
                let stage = &stages[*dl.stage_path.last().unwrap_or(&0)];
                let entered = *dl.stage_times.last().unwrap_or(&data.companies[dl.company].created_at);
                let status = match stage.outcome {
                    crate::model::StageOutcome::Open => "open",
                    crate::model::StageOutcome::Won => "won",
                    crate::model::StageOutcome::Lost => "lost",
                };
                obj(json!({"name": dl.name, "pipeline_id": pipeline.id, "stage_id": stage.id, "value": dl.value,
                    "currency": "USD", "probability": stage.probability,
                    "expected_close_date": dl.expected_close.format("%Y-%m-%d").to_string(),
                    "status": status, "close_reason": dl.close_reason,
                    "closed_at": (status != "open").then(|| ts(entered)),
                    "company_id": ids.companies[dl.company], "owner_id": ids.users[dl.owner],
                    "contact_ids": dl.contacts.iter().map(|c| ids.contacts[*c]).collect::<Vec<_>>(),
                    "stage_entered_at": ts(entered),
                    "created_at": ts(dl.stage_times[0]), "updated_at": ts(entered)}))
            })
            .collect();
        let new_ids = tx.bulk_insert(ctx, RecordType::Deal, rows).await?;
        let mut changes = Vec::new();
        for (dl, id) in part.iter().zip(&new_ids) {
            for (i, (s, t)) in dl.stage_path.iter().zip(&dl.stage_times).enumerate() {
                changes.push(NewStageChange {
                    deal_id: *id,
                    from_stage_id: (i > 0).then(|| stages[dl.stage_path[i - 1]].id),
                    to_stage_id: stages[*s].id,
                    changed_by: Some(ids.users[dl.owner]),
                    changed_at: *t,
                    seconds_in_previous: (i > 0)
                        .then(|| (*t - dl.stage_times[i - 1]).num_seconds()),
                });
            }
        }
        tx.insert_stage_changes(ctx, &changes).await?;
        ids.deals.extend(new_ids);
        progress.inc(part.len() as u64);
    }

    for part in data.activities.chunks(2000) {
        let rows = part
            .iter()
            .map(|a| {
                obj(json!({"kind": a.kind, "direction": a.direction, "subject": a.subject, "body": a.body,
                    "occurred_at": ts(a.occurred_at), "duration_seconds": a.duration_seconds,
                    "company_id": ids.companies[a.company], "contact_id": a.contact.map(|c| ids.contacts[c]),
                    "deal_id": a.deal.map(|x| ids.deals[x]), "owner_id": ids.users[a.owner],
                    "created_at": ts(a.occurred_at), "updated_at": ts(a.occurred_at)}))
            })
            .collect();
        ids.activities
            .extend(tx.bulk_insert(ctx, RecordType::Activity, rows).await?);
        progress.inc(part.len() as u64);
    }

    for part in data.tasks.chunks(2000) {
        let rows = part
            .iter()
            .map(|t| {
                obj(json!({"title": t.title, "due_at": ts(t.due_at), "priority": t.priority, "status": t.status,
                    "completed_at": (t.status == "done").then(|| ts(t.due_at)),
                    "assignee_id": ids.users[t.assignee], "company_id": ids.companies[t.company],
                    "contact_id": t.contact.map(|c| ids.contacts[c]), "deal_id": t.deal.map(|x| ids.deals[x])}))
            })
            .collect();
        ids.tasks
            .extend(tx.bulk_insert(ctx, RecordType::Task, rows).await?);
        progress.inc(part.len() as u64);
    }
    tx.commit().await?;
    progress.finish();
    Ok(ids)
}

/// A fixed date for reproducible fixtures (tests, evaluations).
pub fn fixed_date() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
        .single()
        .expect("valid date")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n: usize) -> SeedParams {
        SeedParams {
            companies: n,
            seed: 7,
            as_of: fixed_date(),
        }
    }

    #[test]
    fn same_seed_same_data() {
        let a = generate(&params(20));
        let b = generate(&params(20));
        assert_eq!(a.activities.len(), b.activities.len());
        assert_eq!(a.activities[17].body, b.activities[17].body);
        let c = generate(&SeedParams {
            seed: 8,
            ..params(20)
        });
        assert_ne!(a.activities[17].body, c.activities[17].body);
    }

    #[test]
    fn a_hundred_companies_make_a_few_thousand_activities() {
        let d = generate(&params(100));
        assert!(
            (2000..5000).contains(&d.activities.len()),
            "{}",
            d.activities.len()
        );
        assert_eq!(d.companies[0].name, "Acme Logistics");
        assert_eq!(d.contacts[0].first_name, "Dana");
        assert!(d.activities.iter().all(|a| a.occurred_at < fixed_date()));
        // Every topic and tone is present, so search and sentiment have something to find.
        for t in TOPICS {
            assert!(d.activities.iter().any(|a| a.topic == t), "{t:?}");
        }
        let mut names: Vec<_> = d.companies.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 100, "company names are unique");
    }

    #[test]
    fn emails_are_written_by_one_side_to_the_other() {
        assert_eq!(
            voice(
                "They are worried about their budget, they said.",
                Voice::First
            ),
            "We are worried about our budget, we said."
        );
        assert_eq!(
            voice("They asked for pricing.", Voice::Second),
            "You asked for pricing."
        );
    }

    #[test]
    fn company_names_stay_unique_at_scale() {
        let mut names: Vec<String> = (0..10_000).map(|c| company_name(c).0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10_000);
    }
}
