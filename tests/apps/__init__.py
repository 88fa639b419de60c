"""Task modules the tests start real workers on."""
