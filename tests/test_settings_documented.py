import re

from tests.processes import BASE_DIR


def test_every_environment_setting_is_documented_in_env_example():
    settings_source = (BASE_DIR / "console" / "settings.py").read_text()
    read = set(re.findall(r'env\.(?:str|bool|int|float|list|tuple|db|email_url)\(\s*"([A-Z_]+)"', settings_source))
    documented = set(re.findall(r"^#? ?([A-Z_]+)=", (BASE_DIR / ".env.example").read_text(), re.MULTILINE))
    assert read, "no settings found: the pattern no longer matches settings.py"
    assert read - documented == set()
