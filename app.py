"""DELT Studio: score, select, order, train and compare, in the browser.

Page config, navigation over pages/ and the shared sidebar; nothing else (pages do the work).
Run with ``./studio.sh app`` or ``streamlit run app.py``. On an address other machines can reach it
shows only a page saying why it refuses to serve there, unless ``DELT_ALLOW_REMOTE=1`` (ui/serving.py).
"""

import streamlit as st

from ui import scenarios, serving, sidebar, state

st.set_page_config(page_title="DELT Studio", page_icon="assets/logo.svg", layout="wide")
if not serving.may_serve():
    serving.refuse()  # stops here: no navigation, no page, no sidebar
state.init_state()
scenarios.restore_from_url()

PAGES = [
    st.Page("pages/data.py", title="Data", icon=":material/dataset:", url_path="data", default=True),
    st.Page("pages/score.py", title="Score", icon=":material/insights:", url_path="score"),
    st.Page("pages/organize.py", title="Organize", icon=":material/sort:", url_path="organize"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]

page = st.navigation(PAGES)
pending = st.session_state.pop(state.PENDING_PAGE, None)
if pending:  # a page that was first opened before app.py had run (see state.require_app)
    target = next((p for p in PAGES if p.url_path == pending[0]), None)
    if target is not None and target.url_path != page.url_path:
        st.switch_page(target, query_params=pending[1] or None)
st.session_state[state.APP_READY] = True
page.run()
sidebar.render()  # after the page: the first chart does not wait for torch (imported for the device name)
