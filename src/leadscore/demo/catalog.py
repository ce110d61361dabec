"""The demo's vocabulary: names, industries, job titles and the pages of the vendor's web site."""

from __future__ import annotations

from dataclasses import dataclass

SITE = "https://www.example.com"

FIRST_NAMES = (
    "Anna", "Lars", "Sofia", "Mikkel", "Emma", "Jonas", "Maja", "Oliver", "Ida", "Lucas", "Clara", "Noah",
    "Freja", "Elias", "Laura", "Victor", "Sara", "Anton", "Julia", "Felix", "Nora", "Oscar", "Alice", "Hugo",
    "Priya", "Marco", "Chen", "Fatima", "Diego", "Aisha", "Tom", "Grace", "Kenji", "Leila", "Ravi", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Nielsen", "Jensen", "Hansen", "Larsson", "Berg", "Schmidt", "Müller", "Dubois", "Rossi", "Smith",
    "Johnson", "Brown", "Garcia", "Kowalski", "Novak", "Virtanen", "Andersen", "Lindqvist", "Weber",
    "Martin", "Bianchi", "Nair", "Tanaka", "Okafor", "Silva", "Kim", "Haddad", "Costa", "Evans", "Moreau",
)  # fmt: skip

NAME_HEADS = (
    "acu", "bril", "cobal", "dyna", "evo", "flux", "gala", "hexa", "inno", "jet", "kine", "lumi", "meri",
    "nova", "opti", "pola", "quanti", "radi", "sola", "tera", "ultra", "velo", "wave", "xeno", "zeni",
)  # fmt: skip
NAME_TAILS = (
    "tech",
    "soft",
    "logic",
    "labs",
    "data",
    "cloud",
    "works",
    "ware",
    "metrics",
    "scale",
    "ly",
    "hub",
)
NAME_SUFFIXES = ("", "", " AB", " ApS", " GmbH", " Ltd", " Inc", " BV", " SAS", " Oy")
TLDS = (".com", ".com", ".io", ".de", ".se", ".dk", ".co.uk", ".nl", ".fr", ".fi")
COUNTRIES = (
    "Denmark",
    "Sweden",
    "Germany",
    "United Kingdom",
    "Netherlands",
    "France",
    "Finland",
    "United States",
)

# (industry, weight, is a good fit for the product): the generator's ground truth, not the model's rules
INDUSTRIES = (
    ("Software", 22, True),
    ("Internet", 10, True),
    ("Marketing & Advertising", 8, True),
    ("Financial Services", 10, False),
    ("Professional Services", 10, False),
    ("Manufacturing", 10, False),
    ("Retail", 8, False),
    ("Healthcare", 7, False),
    ("Education", 6, False),
    ("Government", 5, False),
    ("Non-profit", 4, False),
)

# (title, seniority, in the buying team, weight)
TITLES = (
    ("Chief Marketing Officer", "c_level", True, 2),
    ("CEO & Founder", "c_level", True, 3),
    ("Chief Revenue Officer", "c_level", True, 1),
    ("VP Marketing", "vp", True, 3),
    ("VP Sales", "vp", True, 2),
    ("Head of Growth", "director", True, 3),
    ("Head of Demand Generation", "director", True, 2),
    ("Director of Revenue Operations", "director", True, 2),
    ("Marketing Director", "director", True, 3),
    ("Marketing Manager", "manager", True, 8),
    ("Marketing Operations Manager", "manager", True, 5),
    ("Sales Manager", "manager", True, 4),
    ("CRM Manager", "manager", True, 3),
    ("Demand Generation Specialist", "individual", True, 4),
    ("Content Marketer", "individual", True, 5),
    ("Sales Development Representative", "individual", True, 5),
    ("Software Engineer", "individual", False, 6),
    ("IT Manager", "manager", False, 3),
    ("Finance Manager", "manager", False, 2),
    ("HR Business Partner", "individual", False, 2),
    ("Product Manager", "manager", False, 3),
    ("Data Analyst", "individual", False, 3),
    ("Customer Success Manager", "manager", False, 2),
)
STUDENT_TITLES = ("Student", "Marketing Student", "MBA Student", "Marketing Intern")
UNIVERSITY_DOMAINS = ("student.univ-example.edu", "mail.business-school.edu", "students.kingsbridge.ac.uk")
LEAD_SOURCES = ("organic search", "paid search", "linkedin", "referral", "direct", "newsletter", "event")


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    section: str


def _pages() -> dict[str, tuple[Page, ...]]:
    blog = (
        "what-is-lead-scoring", "fit-vs-engagement", "mql-is-dead", "intent-data-101", "abm-playbook",
        "email-benchmarks-2024", "sales-and-marketing-alignment", "scoring-model-checklist",
        "b2b-attribution", "why-leads-go-cold", "pipeline-reviews", "revops-stack",
    )  # fmt: skip
    product = ("", "/scoring", "/integrations", "/explanations", "/segments", "/security")
    customers = ("", "/northwind", "/bluebridge", "/silvergrid", "/cedarworks")
    docs = ("", "/quick-start", "/model-language", "/api", "/webhooks", "/sso")
    return {
        "home": (Page("/", "Home", "home"),),
        "blog": tuple(Page(f"/blog/{slug}", slug.replace("-", " ").capitalize(), "blog") for slug in blog),
        "product": tuple(
            Page(f"/product{p}", f"Product {p.strip('/') or 'overview'}", "product") for p in product
        ),
        "pricing": (
            Page("/pricing", "Pricing", "pricing"),
            Page("/pricing/enterprise", "Enterprise plan", "pricing"),
        ),
        "customers": tuple(
            Page(f"/customers{p}", f"Customers {p.strip('/')}".strip(), "customers") for p in customers
        ),
        "docs": tuple(Page(f"/docs{p}", f"Docs {p.strip('/') or 'home'}", "docs") for p in docs),
        "careers": (
            Page("/careers", "Careers", "careers"),
            Page("/careers/open-positions", "Open positions", "careers"),
        ),
        "about": (Page("/about", "About us", "about"), Page("/contact", "Contact", "about")),
    }


PAGES = _pages()
EBOOKS = ("The Lead Scoring Handbook", "ABM in 30 Days", "The RevOps Benchmark Report", "Email That Converts")
WEBINAR_TOPICS = ("Scoring 101", "From MQL to pipeline", "ABM live teardown", "Ask a RevOps leader")
EMAIL_TYPES = ("newsletter", "newsletter", "nurture", "product_update")
LOST_REASONS = ("price", "no decision", "chose a competitor", "timing", "missing integration")
