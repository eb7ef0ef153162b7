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


class VisionForm(forms.Form):
    image = forms.FileField(help_text="JPEG, PNG or WebP, at most 10 MB.")
    task = forms.ChoiceField(choices=[(t, t.capitalize()) for t in ("caption", "query", "detect", "point")])
    text = forms.CharField(
        required=False, max_length=500, label="Question or object", help_text="For query, detect and point."
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("task") in ("query", "detect", "point") and not (data.get("text") or "").strip():
            self.add_error("text", "Say what to ask about or look for.")
        return data
