# cmake -DIN=drgate.swagger.json -DOUT=openapi.json -DTITLE=... -DVERSION=... -P openapi_info.cmake
#
# Gives protoc-gen-swagger's document drgate's title and version (it writes the .proto's path and
# "version not set"). string(JSON) writes the document again with sorted keys; the spaces it leaves
# before line ends are dropped (a JSON string cannot hold a raw line break, so no value changes)
# and the file ends with a line break, so docs/openapi.json is a clean text file.
foreach(var IN ITEMS IN OUT TITLE VERSION)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "openapi_info.cmake: -D${var}=... is required")
  endif()
endforeach()

# A JSON string literal of `text`.
function(json_string out text)
  string(REPLACE "\\" "\\\\" text "${text}")
  string(REPLACE "\"" "\\\"" text "${text}")
  set(${out} "\"${text}\"" PARENT_SCOPE)
endfunction()

file(READ "${IN}" doc)
json_string(title "${TITLE}")
json_string(version "${VERSION}")
string(JSON doc SET "${doc}" info title "${title}")
string(JSON doc SET "${doc}" info version "${version}")
string(REGEX REPLACE "[ \t]+\n" "\n" doc "${doc}")
string(STRIP "${doc}" doc)
string(APPEND doc "\n")
# Written beside OUT, then renamed: a build stopped half-way leaves no truncated document.
file(WRITE "${OUT}.tmp" "${doc}")
file(RENAME "${OUT}.tmp" "${OUT}")
