"""leadscore: declarative lead scoring compiled to SQL, with every point explained."""

__version__ = "0.1.0"
