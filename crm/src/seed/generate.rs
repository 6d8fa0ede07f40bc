//! Generation: the same parameters always give the same [`DemoData`].

use super::vocabulary::*;
use super::*;

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

pub(super) fn gen_users(d: &mut DemoData, companies: usize) {
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

pub(super) fn company_name(c: usize) -> (String, usize) {
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

pub(super) fn gen_company(
    d: &mut DemoData,
    rng: &mut ChaCha8Rng,
    p: &SeedParams,
    c: usize,
    reps: &[usize],
) {
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

pub(super) fn gen_deal(
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
pub(super) fn gen_activity(
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

pub(super) fn gen_leads(d: &mut DemoData, rng: &mut ChaCha8Rng, p: &SeedParams, reps: &[usize]) {
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
