"""Every demo input goes through a form (page) or a ninja Schema (API) with the same limits."""

from __future__ import annotations

from django import forms
from django.core.validators import MaxValueValidator

MAX_PROMPT_CHARS = 4000
TEMPERATURE_MAX = 2.0


class GenerateForm(forms.Form):
    prompt = forms.CharField(
        max_length=MAX_PROMPT_CHARS,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "The three laws of thermodynamics are"}),
    )
    temperature = forms.FloatField(min_value=0.0, max_value=TEMPERATURE_MAX, initial=0.7)
    top_p = forms.FloatField(label="Top-p", min_value=0.05, max_value=1.0, initial=0.95)
    max_new_tokens = forms.IntegerField(label="Max tokens", min_value=1, initial=64)

    def __init__(self, *args, max_new_tokens_limit: int = 256, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["max_new_tokens"]
        field.max_value = max_new_tokens_limit
        field.validators.append(MaxValueValidator(max_new_tokens_limit))
        field.widget.attrs.update({"min": 1, "max": max_new_tokens_limit})

    def clean_prompt(self) -> str:
        prompt = self.cleaned_data["prompt"]
        if not prompt.strip():
            raise forms.ValidationError("Write a prompt first.")
        return prompt
