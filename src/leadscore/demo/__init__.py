"""Demo data: a deterministic generator of companies, contacts, events and outcomes, and ``run_demo``.

population  companies and contacts (firmographics, roles, e-mail domains, a hidden fit)
activity    each contact's months of Segment messages
outcomes    opportunities, won and lost deals drawn from fit and behaviour
generator   ``generate(store, leads, seed, now_ms)``: all of it written through the real ingest path
run         ``run_demo(db_url, leads, seed)``: fresh database, model published, data in, hottest leads
"""

from leadscore.demo.generator import GenerateReport, demo_model, generate
from leadscore.demo.run import DemoResult, HotLead, run_demo

__all__ = ["DemoResult", "GenerateReport", "HotLead", "demo_model", "generate", "run_demo"]
