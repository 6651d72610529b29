"""Request and response models of the prediction service."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Contribution(BaseModel):
    feature: str
    value: float = Field(description="The feature's value in the vector used")
    contribution: float = Field(description="Its additive contribution to the predicted return (TreeSHAP)")


class Prediction(BaseModel):
    ticker: str
    predicted_return: float = Field(description="Forecast return over the horizon")
    predicted_price: float = Field(description="Last close compounded by the predicted return")
    interval_low: float = Field(description="Lower bound of the 90% interval of the return (test-set residuals)")
    interval_high: float = Field(description="Upper bound of the 90% interval of the return")
    horizon_sessions: int
    last_close: float
    feature_date: str = Field(description="Session date of the feature vector (YYYY-MM-DD)")
    model_name: str
    model_version: str
    top_contributions: list[Contribution]
    cached: bool = False
