"""The Gradio web chat (a thin layer over ``rag.RAG``); built in the web-chat issue."""
