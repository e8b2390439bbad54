"""Back-end URLs: credentials never shown, and one back end recognised under its different spellings."""

from sleepguard.urls import same_backend, without_credentials


def test_credentials_are_removed_and_nothing_else():
    assert without_credentials("http://shop:S3cretPW@127.0.0.1:8000/base") == "http://127.0.0.1:8000/base"
    assert without_credentials("https://user@babs10.onrender.com") == "https://babs10.onrender.com"
    assert without_credentials("https://babs10.onrender.com/") == "https://babs10.onrender.com/"
    assert without_credentials("") == ""


def test_one_back_end_under_different_spellings():
    assert same_backend("https://Babs10.OnRender.com/", "https://babs10.onrender.com")
    assert same_backend("https://babs10.onrender.com:443", "https://babs10.onrender.com")
    assert same_backend("http://shop:pw@127.0.0.1:80/", "http://127.0.0.1")


def test_other_back_ends_differ():
    assert not same_backend("https://babs10.onrender.com", "http://babs10.onrender.com")
    assert not same_backend("http://127.0.0.1:8001", "http://127.0.0.1:8002")
    assert not same_backend("https://a.example.com", "https://b.example.com")
    assert not same_backend("https://babs10.onrender.com/v1", "https://babs10.onrender.com/v2")
