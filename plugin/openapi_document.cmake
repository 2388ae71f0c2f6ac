# cmake -DIN=openapi.json -DOUT=openapi_document.cc -P openapi_document.cmake
#
# Writes the C++ source that defines drgate::plugin::OpenApiDocument() (plugin/openapi.h): the
# document as one raw string literal. Its closing sequence )drgate_openapi" cannot occur in JSON
# (a quote inside a JSON string follows a backslash; outside strings there is no ')'); the check
# below makes sure of it anyway. gcc and clang take string literals of any length.
foreach(var IN ITEMS IN OUT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "openapi_document.cmake: -D${var}=... is required")
  endif()
endforeach()

set(delimiter drgate_openapi)
file(READ "${IN}" doc)
string(FIND "${doc}" ")${delimiter}\"" at)
if(NOT at EQUAL -1)
  message(FATAL_ERROR "openapi_document.cmake: ${IN} contains )${delimiter}\", which would end "
                      "the raw string literal early; choose another delimiter")
endif()
get_filename_component(in_name "${IN}" NAME)
set(source "// Generated at build time by plugin/openapi_document.cmake from ${in_name}; do not edit.
#include \"plugin/openapi.h\"

namespace drgate::plugin {

std::string_view OpenApiDocument() {
  static constexpr std::string_view kDocument = R\"${delimiter}(")
string(APPEND source "${doc}")
string(APPEND source ")${delimiter}\";
  return kDocument;
}

}  // namespace drgate::plugin
")
file(WRITE "${OUT}.tmp" "${source}")
file(RENAME "${OUT}.tmp" "${OUT}")
