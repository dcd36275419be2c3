"""The paper's protocol: stages, their plan and controls."""
