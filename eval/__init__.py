"""Evaluation question sets run against ``rag.RAG``; built in the evaluation issue."""
