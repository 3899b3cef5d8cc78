# SGG_UPDATE_IMPL=eager is set for the whole suite in tests/conftest.py.
